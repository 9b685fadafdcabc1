"""Upload a folder to a bucket of a local S3 server: s3_put.py ENDPOINT BUCKET PREFIX DIR.

Creates the bucket if needed. Used by tests/s3.rs with moto_server on 127.0.0.1.
"""
import os
import sys

import boto3

endpoint, bucket, prefix, root = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
)
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
count = 0
for dirpath, _, files in os.walk(root):
    for name in sorted(files):
        path = os.path.join(dirpath, name)
        key = prefix + os.path.relpath(path, root).replace(os.sep, "/")
        s3.upload_file(path, bucket, key)
        count += 1
print(f"uploaded {count} objects to s3://{bucket}/{prefix}")
