fn main() {
    let args: Vec<String> = std::env::args().collect();
    let m = fhirlake::model::generate(std::path::Path::new(&args[1])).unwrap();
    std::fs::write(&args[2], fhirlake::model::generate::to_text(&m)).unwrap();
}
