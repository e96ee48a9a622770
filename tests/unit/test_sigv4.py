"""Our SigV4 signer agrees with AWS's published example and with botocore's signer."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.blobs import sigv4

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_aws_documented_get_object_example() -> None:
    # "Example: GET Object" of AWS's SigV4 header-signing documentation for S3.
    headers = sigv4.sign(
        method="GET",
        host="examplebucket.s3.amazonaws.com",
        path="/test.txt",
        query={},
        headers={"Range": "bytes=0-9"},
        payload_sha256=sigv4.EMPTY_SHA256,
        access_key=AWS_KEY,
        secret_key=AWS_SECRET,
        region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


_segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "HEAD", "DELETE"]),
    segments=st.lists(_segment, min_size=1, max_size=3),
    content_type=st.sampled_from(["", "image/jpeg", "application/pdf"]),
    body=st.binary(max_size=64),
    region=st.sampled_from(["us-east-1", "eu-west-1", "sa-east-1"]),
)
def test_matches_botocore(
    method: str, segments: list[str], content_type: str, body: bytes, region: str
) -> None:
    path = "/bucket/" + "/".join(segments)
    host = "127.0.0.1:9000"
    now = datetime(2026, 12, 5, 9, 30, 0, tzinfo=UTC)
    payload = hashlib.sha256(body).hexdigest()
    extra = {"content-type": content_type} if content_type else {}
    ours = sigv4.sign(
        method=method,
        host=host,
        path=path,
        query={},
        headers=extra,
        payload_sha256=payload,
        access_key=AWS_KEY,
        secret_key=AWS_SECRET,
        region=region,
        now=now,
    )
    url = f"http://{host}{sigv4.canonical_uri(path)}"
    request = AWSRequest(method=method, url=url, data=body, headers=dict(extra))
    request.context["timestamp"] = now.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Content-SHA256"] = payload
    signer = S3SigV4Auth(Credentials(AWS_KEY, AWS_SECRET), "s3", region)
    # add_auth would stamp the request with the real clock: its steps, with ours.
    signer._modify_request_before_signing(request)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    assert ours["Authorization"].endswith(f"Signature={signature}")
