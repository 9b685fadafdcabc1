"""Inspect a bucket of a local S3 server: s3_inspect.py ENDPOINT BUCKET PREFIX [DOWNLOAD_DIR].

Prints JSON: every object under PREFIX with its size, ETag and server-side encryption, and
the multipart uploads still under way. With DOWNLOAD_DIR, also downloads the objects there
(keys relative to PREFIX). Used by tests/s3.rs.
"""
import json
import os
import sys

import boto3

endpoint, bucket, prefix = sys.argv[1:4]
download = sys.argv[4] if len(sys.argv) > 4 else None
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
)
objects = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        head = s3.head_object(Bucket=bucket, Key=o["Key"])
        objects.append(
            {
                "key": o["Key"],
                "size": o["Size"],
                "etag": head["ETag"].strip('"'),
                "sse": head.get("ServerSideEncryption"),
                "kmsKeyId": head.get("SSEKMSKeyId"),
            }
        )
        if download:
            path = os.path.join(download, o["Key"][len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, o["Key"], path)
uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
print(json.dumps({"objects": objects, "uploads": [u["Key"] for u in uploads]}))
