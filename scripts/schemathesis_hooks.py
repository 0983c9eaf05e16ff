"""Schemathesis hooks: how to send a tus body (application/offset+octet-stream)."""

import schemathesis


@schemathesis.serializer("application/offset+octet-stream")
def octets(ctx, value):
    if isinstance(value, bytes):
        return value
    return str(value).encode()
