"""S3 and S3-compatible object stores (AWS, MinIO, SeaweedFS, ...) through s3fs.

URL: `s3://BUCKET[/PREFIX]`. The endpoint is the `endpoint` option, else `AWS_ENDPOINT_URL_S3`
or `AWS_ENDPOINT_URL`, else AWS. Credentials come from wherever botocore finds them
(`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE` or the `profile` option,
~/.aws/credentials and config, instance roles); never from the URL.

An S3 PUT is atomic, so objects are written in place: there are no temporary objects for
`prune` to find (`stale_temporaries` answers []), and every PUT is a single `put_object`,
never a multipart upload that a killed run could leave open. s3fs and botocore retries
are turned off (one retry layer: `RetryStore`), instance caching is off and listings are
read from the server every time (`list_objects_v2` directly, never fsspec's listing cache).

Errors: NoSuchKey/404 -> ObjectNotFound; 403, bad key id, bad signature, no credentials
-> AuthError; AccessDenied (403) on a write, 507 and quota or storage-full codes ->
RemoteRefused (the server refused us: retrying will not help); connection failures,
timeouts, other 5xx, 429 and SlowDown -> TransientError; NoSuchBucket -> NotARepository
(retrying cannot create a bucket; `init` does).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

import botocore.exceptions as bex
import s3fs
from botocore.parsers import ResponseParserError

from vaultsync.errors import (
    AuthError,
    NotARepository,
    ObjectNotFound,
    RemoteRefused,
    RemoteUnreachable,
    TransientError,
    UsageError,
)
from vaultsync.store._remote import join, number
from vaultsync.store.base import Capabilities, ObjectInfo, Store

_AUTH_CODES = {
    "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
    "InvalidToken", "TokenRefreshRequired", "AccountProblem", "AllAccessDisabled",
    "NotSignedUp", "InvalidSecurity", "RequestTimeTooSkewed", "AuthorizationHeaderMalformed",
    "403", "401",
}
# the server is full or the account over quota (AWS, MinIO, Ceph RGW, SeaweedFS, ...)
_FULL_CODES = {
    "QuotaExceeded", "XMinioStorageFull", "XMinioAdminBucketQuotaExceeded", "StorageFull",
    "InsufficientStorage", "507", "EntityTooLarge",
}
_WRITES = {"put_object", "delete_object", "create_bucket", "delete_objects"}
_TRANSIENT_CODES = {
    "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "TooManyRequests", "OperationAborted",
    "XAmzContentSHA256Mismatch", "BadDigest", "IncompleteBody"
}
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    bex.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError
    bex.HTTPClientError,  # ReadTimeoutError, ConnectionClosedError
    ResponseParserError,
    bex.IncompleteReadError,
    asyncio.TimeoutError,
    TimeoutError,
    ConnectionError,
)
try:  # aiohttp errors can escape aiobotocore's translation
    import aiohttp

    _NETWORK_ERRORS += (aiohttp.ClientError,)
except ImportError:  # pragma: no cover
    pass
try:
    from fsspec.exceptions import FSTimeoutError

    _NETWORK_ERRORS += (FSTimeoutError,)
except ImportError:  # pragma: no cover
    pass


def from_url(url: str, options: Mapping[str, str]) -> S3Store:
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise UsageError(
            "s3:// URLs take no credentials: use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or the profile option"
        )
    bucket = parts.hostname or ""
    if not bucket or ":" in parts.netloc:
        raise UsageError(f"bad S3 URL s3://{bucket}{parts.path}: expected s3://BUCKET/PREFIX")
    endpoint = (
        options.get("endpoint")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )
    return S3Store(
        bucket,
        parts.path.strip("/"),
        endpoint=endpoint,
        profile=options.get("profile") or None,
        timeout=number(options, "timeout", 30.0),
    )


class S3Store(Store):
    capabilities = Capabilities(atomic_put=True, ranged_get=True, conditional_put=False,
                                connections=8)

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None,
                 profile: str | None = None, timeout: float = 30.0) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self.where = self.url + (f" at {endpoint}" if endpoint else "")
        kwargs: dict[str, Any] = {}
        if profile:
            kwargs["profile"] = profile
        self.fs = s3fs.S3FileSystem(
            skip_instance_cache=True,
            use_listings_cache=False,
            endpoint_url=endpoint,
            config_kwargs={
                "retries": {"total_max_attempts": 1},
                "connect_timeout": min(timeout, 10.0),
                "read_timeout": timeout,
            },
            **kwargs,
        )
        self.fs.retries = 1  # s3fs's own retry loop: off, RetryStore is the one layer

    def __repr__(self) -> str:
        return f"S3Store({self.where!r})"

    def _key(self, name: str) -> str:
        return join(self.prefix, name)

    # -- error mapping -------------------------------------------------------------------

    def _fail(self, exc: BaseException, name: str | None = None,
              write: bool = False) -> NoReturn:
        client_error = exc if isinstance(exc, bex.ClientError) else exc.__cause__
        if isinstance(client_error, bex.ClientError):
            err = client_error.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = int(client_error.response.get("ResponseMetadata", {})
                         .get("HTTPStatusCode", 0) or (code.isdigit() and code) or 0)
            what = f"{code or status}" + (f" on {name}" if name else "")
            if code in _FULL_CODES or status == 507:
                raise RemoteRefused(f"remote is full: S3 refused a write ({what}) on "
                                    f"{self.where}: storage full or quota exceeded") from None
            if write and code == "AccessDenied":  # bad keys answer InvalidAccessKeyId etc.
                raise RemoteRefused(
                    f"remote permission denied: S3 refused a write ({what}) on {self.where}: "
                    "these credentials may read but not write (read-only policy, "
                    "object lock?)") from None
            if code in ("NoSuchKey", "404") and name is not None:
                raise ObjectNotFound(name) from None
            if code == "NoSuchBucket" or (code == "404" and name is None):
                raise NotARepository(
                    f"bucket {self.bucket} does not exist ({self.where}); "
                    "`vaultsync init --remote URL` creates it"
                ) from None
            if code in _AUTH_CODES or status in (401, 403):
                raise AuthError(
                    f"S3 refused our credentials or access ({what}) for {self.where}: "
                    "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile"
                ) from None
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                raise TransientError(f"S3 server error ({what}) from {self.where}") from None
            raise RemoteUnreachable(f"S3 request failed ({what}) on {self.where}") from None
        if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError)):
            raise AuthError(
                f"no S3 credentials found for {self.where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the profile option"
            ) from None
        if isinstance(exc, bex.ProfileNotFound):
            raise AuthError(f"AWS profile not found (for {self.where})") from None
        if isinstance(exc, _NETWORK_ERRORS) or isinstance(exc.__cause__, _NETWORK_ERRORS):
            raise TransientError(
                f"cannot reach S3 {self.where}: {type(exc).__name__}"
            ) from None
        if isinstance(exc, FileNotFoundError) and name is not None:
            raise ObjectNotFound(name) from None
        if isinstance(exc, PermissionError):
            if write:
                raise RemoteRefused(f"remote permission denied: S3 refused a write on "
                                    f"{self.where}") from None
            raise AuthError(f"S3 access denied for {self.where}") from None
        raise RemoteUnreachable(f"S3 request on {self.where} failed: {type(exc).__name__}") \
            from None

    def _call(self, method: str, name: str | None = None, **kwargs: Any) -> Any:
        try:
            return self.fs.call_s3(method, Bucket=self.bucket, **kwargs)
        except Exception as exc:
            self._fail(exc, name, write=method in _WRITES)

    # -- the store -----------------------------------------------------------------------

    def exists(self) -> bool:
        try:
            self._call("head_bucket")
        except NotARepository:
            return False
        return True

    def prepare(self) -> None:
        if self.exists():
            return
        kwargs: dict[str, Any] = {}
        region = self._region()
        if region and region not in ("us-east-1", "aws-global") and not self.endpoint:
            # AWS wants the region spelled out outside us-east-1. Never for other
            # endpoints: SeaweedFS/MinIO answer InvalidLocationConstraint (servers.md).
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.fs.call_s3("create_bucket", Bucket=self.bucket, **kwargs)
        except Exception as exc:
            cause = exc if isinstance(exc, bex.ClientError) else exc.__cause__
            if isinstance(cause, bex.ClientError) and cause.response.get("Error", {}).get(
                "Code"
            ) in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            self._fail(exc, write=True)

    def _region(self) -> str | None:
        try:
            return str(self.fs.s3.meta.region_name or "") or None
        except Exception:  # noqa: BLE001 - no region known: let S3 decide
            return None

    def _get(self, name: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(f"{self.bucket}/{self._key(name)}",
                                          max_concurrency=1))
        except Exception as exc:
            self._fail(exc, name)

    def _get_range(self, name: str, offset: int, length: int) -> bytes:
        if length == 0:
            if self._stat(name) is None:
                raise ObjectNotFound(name)
            return b""
        try:
            return bytes(self.fs.cat_file(f"{self.bucket}/{self._key(name)}",
                                          start=offset, end=offset + length))
        except Exception as exc:
            self._fail(exc, name)

    def _put(self, name: str, data: bytes) -> None:
        self._call("put_object", name, Key=self._key(name), Body=bytes(data))

    def _delete(self, name: str) -> None:
        try:
            self._call("delete_object", name, Key=self._key(name))
        except ObjectNotFound:
            pass

    def _stat(self, name: str) -> ObjectInfo | None:
        try:
            head = self._call("head_object", name, Key=self._key(name))
        except ObjectNotFound:
            if not self.exists():  # a HEAD answers a bare 404 for a missing bucket too
                raise NotARepository(f"bucket {self.bucket} does not exist ({self.where})"
                                     ) from None
            return None
        return ObjectInfo(name, int(head["ContentLength"]))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.prefix + "/" if self.prefix else ""
        kwargs: dict[str, Any] = {"Prefix": base + prefix}
        for _ in range(1_000_000):  # bounded: a million pages of 1000 keys
            page = self._call("list_objects_v2", **kwargs)
            for item in page.get("Contents", []) or []:
                key = item["Key"]
                if key.startswith(base):
                    yield ObjectInfo(key[len(base):], int(item["Size"]))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token
