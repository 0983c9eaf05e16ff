"""Uploads a file to Stowage with tuspy, the tus client from PyPI.

Usage: tuspy_upload.py <base URL> <access token> <file>

Sends 2 MiB chunks with Upload-Checksum, stops halfway (a pause), then a new
uploader resumes from the upload's URL as a restarted client would (it asks
the server for the offset). Prints the upload URL.
"""

import os
import sys

from tusclient import client

CHUNK = 2 * 1024 * 1024


def main() -> None:
    base, token, path = sys.argv[1:4]
    tus = client.TusClient(
        f"{base}/api/v1/tus", headers={"Authorization": f"Bearer {token}"}
    )
    size = os.path.getsize(path)
    first = tus.uploader(
        path,
        chunk_size=CHUNK,
        metadata={"filename": "tuspy.bin", "filetype": "application/x-tuspy"},
        upload_checksum=True,
    )
    first.upload(stop_at=size // 2)
    paused_at = first.offset
    assert 0 < paused_at < size, f"paused at {paused_at} of {size}"

    second = tus.uploader(path, url=first.url, chunk_size=CHUNK, upload_checksum=True)
    assert second.offset == paused_at, f"resumed at {second.offset}, paused at {paused_at}"
    second.upload()
    assert second.offset == size, f"finished at {second.offset} of {size}"
    print(first.url)


if __name__ == "__main__":
    main()
