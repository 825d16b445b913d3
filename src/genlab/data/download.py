"""Downloads that never leave a partial file as the data: stream into a temp file beside the target, check the size
the server announced and the SHA-256, then rename into place; a cut connection gives one clear error and a retry."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from genlab.checkpoint import storage_error
from genlab.errors import DataError

CHUNK = 1 << 20
STALE_PART_SECONDS = 600.0  # a ".part" file untouched this long belongs to a download that died (an active one writes every chunk)


def fetch(url: str, target: str | os.PathLike, *, sha256: str | None = None, size: int | None = None, timeout: float = 60.0) -> Path:
    """Download `url` to `target`: into `.<name>.<random>.part` first, renamed over `target` only when complete (the
    byte count the server announced, `size` and `sha256` when given). On any failure `target` is untouched, the
    part file is removed and a DataError says what happened; calling again starts a fresh download."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    got = 0
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    announced = response.headers.get("Content-Length") if hasattr(response, "headers") else None
                    while chunk := response.read(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        got += len(chunk)
            except urllib.error.HTTPError as e:
                raise DataError(f"{url}: the server answered HTTP {e.code} {e.reason}; nothing was saved as {target.name}") from None
            except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError) as e:
                reason = getattr(e, "reason", None) or e.__class__.__name__
                what = f"was interrupted after {got:,} bytes" if got else "could not start"
                raise DataError(
                    f"the download of {url} {what} ({reason}); nothing was saved as {target.name}. "
                    "Check the connection and run the same command again (the download starts over)"
                ) from None
        expected = size if size is not None else int(announced) if announced and announced.isdigit() else None
        if expected is not None and got != expected:
            raise DataError(
                f"the download of {url} stopped after {got:,} of {expected:,} bytes; nothing was saved as {target.name}. "
                "Run the same command again (the download starts over)"
            )
        if sha256 is not None and h.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 {h.hexdigest()} does not match the expected {sha256}; nothing was saved. Try again later")
        os.replace(tmp, target)
    except OSError as e:  # writing the part file: a full disk or a read-only folder
        failure = storage_error(e, target)
        if failure is None:
            raise
        raise DataError(f"downloading {url}: {failure}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def remove_stale_parts(target: Path) -> list[str]:
    """Delete the part files of `target` that a killed download left behind (untouched for STALE_PART_SECONDS)."""
    now, removed = time.time(), []
    for p in target.parent.glob(f".{target.name}.*.part"):
        try:
            if now - p.stat().st_mtime > STALE_PART_SECONDS:
                p.unlink()
                removed.append(p.name)
        except FileNotFoundError:  # another process removed it first
            pass
    return sorted(removed)
