"""One CloudTrail API-call record for tests that build a trail by hand.

The fields every such record carries, in the order CloudTrail writes them; each test keeps its
own identities and times (what it is about) and passes them in.
"""

from __future__ import annotations

from typing import Any


def api_call(
    no: int,
    time: str,
    account: str,
    identity: dict[str, Any],
    name: str = "GetObject",
    *,
    source: str = "s3.amazonaws.com",
    ua: str = "aws-cli/2.15.0",
    params: Any = None,
    response: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """A management-event record: ``no`` makes its ``eventID``; ``extra`` adds or overrides
    fields (``sharedEventID``, ``errorCode``, ``readOnly``, ...)."""
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": ua,
        "requestParameters": params,
        "responseElements": response,
        "eventID": f"00000000-0000-4000-8000-{no:012d}",
        "readOnly": True,
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
        **extra,
    }
