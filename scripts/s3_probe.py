#!/usr/bin/env python3
"""Creates a bucket with a SigV4-signed request; exits 0 once the S3 server
accepts it (201/200, or 409 if it exists). Used to tell that SeaweedFS is
really serving, not merely listening. Standard library only.

usage: s3_probe.py ENDPOINT ACCESS_KEY SECRET_KEY BUCKET [REGION]
"""
import datetime
import hashlib
import hmac
import sys
import urllib.error
import urllib.request


def sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def main() -> int:
    endpoint, access, secret, bucket = sys.argv[1:5]
    region = sys.argv[5] if len(sys.argv) > 5 else "us-east-1"
    host = endpoint.split("://", 1)[1].rstrip("/")
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(b"").hexdigest()
    canonical = "\n".join([
        "PUT", f"/{bucket}", "",
        f"host:{host}", f"x-amz-content-sha256:{payload_hash}", f"x-amz-date:{amz_date}", "",
        "host;x-amz-content-sha256;x-amz-date", payload_hash,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = sign(sign(sign(sign(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{endpoint.rstrip('/')}/{bucket}", method="PUT", data=b"")
    req.add_header("x-amz-date", amz_date)
    req.add_header("x-amz-content-sha256", payload_hash)
    req.add_header("Authorization",
                   f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
                   f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}")
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return 0 if res.status in (200, 201) else 1
    except urllib.error.HTTPError as e:
        return 0 if e.code == 409 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
