"""Object storage (``s3://``, ``gs://``, ``az://``, ``memory://``) through fsspec, behind the
same ``FileSystem`` seam as the local disk.

Paths stay URLs everywhere above this module (``s3://bucket/logs/alice/G_100.pth``): that is
what the user typed and what the output and the journal show. Here they become the backend's
own paths. Credentials and endpoints come only from each backend's standard configuration
(for S3: the AWS environment variables and files, ``AWS_ENDPOINT_URL`` for S3-compatible
stores); janitor adds none of its own.

What an object store gives, and what janitor makes of it:
- An object appears whole when its upload completes; a put replaces an object atomically.
  A truncated file can still be uploaded, so a checkpoint's tail is checked as on disk, with
  ranged reads (all probed objects of a folder in one concurrent batch).
- There are no folders, links, renames or appends. A "rename" (trash, restore) is a
  server-side copy then a delete: not atomic, and it costs a copy of the object's bytes. An
  append-only file (the journal) is a series of record objects ``<name>.d/<time>-<id>``,
  each put whole; reading the file reads them in order.
- A stat key is the object's size, ETag (or version) and modification time: an object
  rewritten with the same size has another ETag.
- A lock is an object created with a conditional write (``If-None-Match: *``), holding its
  owner, host, pid and expiry. A lock past its expiry is taken over with a conditional
  overwrite of exactly the expired lock (``If-Match`` its ETag), and that is said on stderr.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from janitor.domain.checkpoints import UnfinishedUpload
from janitor.domain.errors import StorageError, UsageError
from janitor.storage import layout
from janitor.storage.fs import (
    KEY,
    DirEntry,
    Found,
    LockTimeout,
    StatKey,
    fsync_path,
)

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}
LOCK_TTL = 15 * 60.0  # seconds a lock object stays valid without its holder
RECORDS = ".d"  # an append-only file's record objects: <name>.d/<time_ns>-<id>
APPEND_ONLY = frozenset({layout.JOURNAL_NAME})  # the files janitor appends to
_seq = itertools.count()


def open_url(url: str) -> tuple[FsspecFS, str]:
    """The storage for a URL, or one line saying which extra to install."""
    protocol = url.split("://", 1)[0].lower()
    try:
        import fsspec

        cls = fsspec.get_filesystem_class(protocol)
    except ImportError:
        extra = EXTRAS.get(protocol, protocol)
        raise UsageError(
            f"{url}: {protocol}:// needs its fsspec backend: pip install 'vits-janitor[{extra}]'"
        ) from None
    except ValueError:
        raise UsageError(f"{url}: unknown storage {protocol}://") from None
    options: dict[str, Any] = {"skip_instance_cache": True}
    if protocol != "memory":
        options["use_listings_cache"] = False
    return FsspecFS(cls(**options), protocol), url.rstrip("/") or url


def _oserror(exc: BaseException, path: str) -> OSError:
    """The backend's exception as an OSError with an errno the layers above understand."""
    if isinstance(exc, StorageError) or (isinstance(exc, OSError) and exc.errno is not None):
        return exc  # type: ignore[return-value]
    if isinstance(exc, FileNotFoundError):
        return FileNotFoundError(errno.ENOENT, "no such object or bucket", path)
    if isinstance(exc, FileExistsError):
        return FileExistsError(errno.EEXIST, "exists", path)
    name = type(exc).__name__
    if isinstance(exc, PermissionError) or "Credential" in name:
        return StorageError(
            errno.EACCES,
            f"access denied ({_first_line(exc)}); check the credentials: the backend's "
            "standard configuration (for S3: AWS_* environment variables, ~/.aws files)",
            path,
        )
    return StorageError(errno.EIO, f"storage error: {_first_line(exc)}", path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


@contextlib.contextmanager
def _translated(path: str) -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError) as exc:
        raise _oserror(exc, path) from None
    except Exception as exc:  # botocore/aiohttp errors that the backend did not translate
        if type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore", "aiohttp"):
            raise _oserror(exc, path) from None
        raise


def _mtime(info: Mapping[str, Any]) -> float:
    for field in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def _version_tag(info: Mapping[str, Any]) -> str:
    for field in ("ETag", "etag", "VersionId", "generation", "md5Hash"):
        value = info.get(field)
        if value:
            return str(value).strip('"')
    return ""


def object_key(info: Mapping[str, Any], size: int, mtime: float) -> StatKey:
    """A stat key for an object: a digest of its ETag (or version) and modification time,
    and its size, in the same 40 bytes as a local key. An upload of other bytes has another
    ETag, a new upload of the same bytes another time. Its timestamp fields stay 0: an
    object's content cannot change without its ETag, so no key is racy (the verdict cache's
    racy-timestamp rule is for files rewritten in place); a store without ETags
    (``memory://``) keeps the time there, racy rule and all."""
    tag = _version_tag(info)
    ns = int(mtime * 1e9)
    digest = hashlib.blake2b(f"{tag}\0{ns}".encode(), digest_size=16).digest()
    hi, lo = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")
    ns = 0 if tag else ns
    return KEY.pack(hi, lo, size, ns, ns)


class _RecordAppender:
    """An append-only file on an object store: each ``sync`` (and ``close``) puts what was
    written since as one new record object; records are read back in name order."""

    def __init__(self, fs: FsspecFS, path: str) -> None:
        self.fs, self.path, self.buf = fs, path, bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data

    def sync(self) -> None:
        if self.buf:
            name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}-{next(_seq):06d}"
            self.fs.write_atomic(f"{self.path}{RECORDS}/{name}", bytes(self.buf))
            self.buf.clear()

    def close(self) -> None:
        self.sync()


class _Snapshot:
    """One recursive listing of a prefix: its objects and the folders their keys imply."""

    def __init__(self, root: str, infos: Any) -> None:
        self.root = root.rstrip("/")
        self.objects: dict[str, dict] = {}
        self.folders: dict[str, dict[str, dict]] = {self.root: {}}
        for info in infos:
            name = str(info["name"]).rstrip("/")
            if info.get("type") == "directory" or not name.startswith(self.root + "/"):
                continue
            self.objects[name] = info
            child, parent = name, name.rsplit("/", 1)[0]
            while True:
                kids = self.folders.get(parent)
                new = kids is None
                if new:
                    kids = self.folders[parent] = {}
                kids[child] = self.objects.get(child) or {"name": child, "type": "directory",
                                                          "size": 0}  # fmt: skip
                if not new or parent == self.root:
                    break
                child, parent = parent, parent.rsplit("/", 1)[0]

    def covers(self, path: str) -> bool:
        path = path.rstrip("/")
        return path == self.root or path.startswith(self.root + "/")

    def children(self, path: str) -> list[dict]:
        kids = self.folders.get(path.rstrip("/"))
        if kids is None:
            if path.rstrip("/") in self.objects:
                return []
            raise FileNotFoundError(errno.ENOENT, "no such prefix", path)
        return list(kids.values())

    def info(self, path: str) -> dict:
        path = path.rstrip("/")
        if path in self.objects:
            return self.objects[path]
        if path in self.folders:
            return {"name": path, "type": "directory", "size": 0}
        raise FileNotFoundError(errno.ENOENT, "no such object", path)


class FsspecFS:
    """One fsspec file system; paths are the user's URLs (``<protocol>://…``)."""

    def __init__(self, fs: Any, protocol: str) -> None:
        self.fs = fs
        self.protocol = protocol
        self.prefix = f"{protocol}://"
        self._local = threading.local()  # this thread's listing snapshot (``listing``)

    # ------------------------------------------------------------- paths

    def _p(self, path: str) -> str:
        """The backend's path for a URL (Windows separators from os.path made '/')."""
        path = path.replace("\\", "/") if os.sep == "\\" else path
        return self.fs._strip_protocol(path)

    def _url(self, backend_path: str) -> str:
        return self.prefix + backend_path.lstrip("/")

    def _entry(self, info: Mapping[str, Any]) -> DirEntry:
        bp = str(info["name"]).rstrip("/")
        kind = "dir" if info.get("type") == "directory" else "file"
        size = int(info.get("size") or 0) if kind == "file" else 0
        mtime = _mtime(info)
        return DirEntry(bp.rsplit("/", 1)[-1], self._url(bp), kind, size, mtime, mtime)

    # ------------------------------------------------------------- reading

    def _ls(self, path: str) -> list[dict]:
        snap = self._snapshot(path)
        if snap is not None:
            return snap.children(self._p(path))
        with _translated(path):
            infos = self.fs.ls(self._p(path), detail=True)
        here = self._p(path).rstrip("/")
        return [i for i in infos if str(i["name"]).rstrip("/") != here]

    def _info(self, path: str) -> dict:
        snap = self._snapshot(path)
        if snap is not None:
            return snap.info(self._p(path))
        with _translated(path):
            return self.fs.info(self._p(path))

    def _snapshot(self, path: str) -> _Snapshot | None:
        snap = getattr(self._local, "snapshot", None)
        return snap if snap is not None and snap.covers(self._p(path)) else None

    @contextlib.contextmanager
    def listing(self, path: str) -> Iterator[None]:
        """While a scan walks ``path``: one recursive listing (one request per 1,000 objects)
        answers every listing, stat and existence check below it in this thread, instead of
        a few requests per folder. Objects are still read from the store; the executor's
        re-check under the lock lists again (it never runs inside this)."""
        if getattr(self._local, "snapshot", None) is not None:
            yield
            return
        try:
            with _translated(path):
                found = self.fs.find(self._p(path), detail=True)
        except OSError:
            found = None
        if not found:
            yield
            return
        self._local.snapshot = _Snapshot(self._p(path), found.values())
        try:
            yield
        finally:
            self._local.snapshot = None

    def listdir(self, path: str) -> list[DirEntry]:
        """The objects and prefixes under ``path``; a prefix with nothing under it is an
        empty folder (``makedirs`` makes nothing on a store)."""
        try:
            infos = self._ls(path)
        except FileNotFoundError:
            return []
        if len(infos) == 0 and self._is_file(path):
            raise NotADirectoryError(errno.ENOTDIR, "an object, not a folder", path)
        return [self._entry(i) for i in infos if not self._hidden(i)]

    @staticmethod
    def _hidden(info: Mapping[str, Any]) -> bool:
        # a zero-byte "folder/" marker some tools write is not a file of the folder
        return str(info["name"]).endswith("/") and info.get("type") != "directory"

    def _is_file(self, path: str) -> bool:
        try:
            return self._info(path).get("type") == "file"
        except OSError:
            return False

    def survey(
        self,
        path: str,
        probe: Callable[[str], object],
        known: Mapping[str, StatKey],
        head: int,
        tail: int,
    ) -> list[Found]:
        """One listing; the ends of every probed object whose key is not ``known`` are
        fetched in one concurrent batch of ranged reads (two per object)."""
        out: list[Found] = []
        wanted: list[tuple[int, str, int]] = []  # index in out, name, size
        for info in self._ls(path):
            if self._hidden(info):
                continue
            e = self._entry(info)
            if e.kind == "dir":
                out.append(Found(e.name, "dir", 0, 0.0))
                continue
            key = object_key(info, e.size, e.mtime)
            if probe(e.name) and known.get(e.name) != key:
                wanted.append((len(out), e.name, e.size))
            out.append(Found(e.name, "file", e.size, e.mtime, key))
        if wanted:
            base = path.rstrip("/") + "/"
            ends = self._fetch_ends([(base + n, s) for _, n, s in wanted], head, tail)
            for (i, _, _), got in zip(wanted, ends, strict=True):
                out[i] = out[i]._replace(ends=got)
        return out

    def _fetch_ends(
        self, objects: Sequence[tuple[str, int]], head: int, tail: int
    ) -> list[tuple[bytes, bytes] | OSError]:
        """The first ``head`` and last ``tail`` bytes of each (url, size), as ``LocalFS``
        reads them (the two may overlap in a small object); empty ranges are not asked for
        (a store refuses a range past the end)."""
        wanted: list[tuple[int, int, int]] = []  # object index, start, end
        for i, (_, size) in enumerate(objects):
            wanted += [(i, 0, min(head, size)), (i, size - min(tail, size), size)]
        asked = [(i, a, b) for i, a, b in wanted if b > a]
        data: list = []
        if asked:
            try:
                with _translated(objects[0][0]):
                    data = self.fs.cat_ranges(
                        [self._p(objects[i][0]) for i, _, _ in asked],
                        [a for _, a, _ in asked], [b for _, _, b in asked], on_error="return",
                    )  # fmt: skip
            except OSError as exc:
                return [exc] * len(objects)
        got = iter(data)
        parts = [next(got) if b > a else b"" for _, a, b in wanted]
        out: list[tuple[bytes, bytes] | OSError] = []
        for (url, _), h, t in zip(objects, parts[::2], parts[1::2], strict=True):
            bad = next((x for x in (h, t) if isinstance(x, BaseException)), None)
            out.append(_oserror(bad, url) if bad is not None else (bytes(h), bytes(t)))
        return out

    def stat(self, path: str) -> DirEntry:
        return self._entry(self._info(path))

    def exists(self, path: str) -> bool:
        """An object or a prefix (or an append-only file's records)."""
        try:
            self._info(path)
            return True
        except FileNotFoundError:
            return self._records(path) is not None

    def is_dir(self, path: str) -> bool:
        try:
            return self._info(path).get("type") == "directory"
        except OSError:
            return False

    def read_ends(self, path: str, head: int, tail: int) -> tuple[bytes, bytes, int]:
        records = self._records(path)
        if records is not None:  # an append-only file: records are always whole
            data = self.read_bytes(path)
            return data[:head], data[-tail:] if tail else b"", len(data)
        size = self.stat(path).size
        got = self._fetch_ends([(path, size)], head, tail)[0]
        if isinstance(got, OSError):
            raise got
        return got[0], got[1], size

    def read_bytes(self, path: str, offset: int = 0) -> bytes:
        records = self._records(path)
        if records is not None:  # fetched concurrently
            with _translated(path):
                parts = self.fs.cat([self._p(r) for r in records])
            return b"".join(bytes(parts[self._p(r)]) for r in records)[offset:]
        snap = self._snapshot(path)
        if snap is not None:  # during a scan: a file its listing did not see is not asked for
            snap.info(self._p(path))
        return self._cat(path, offset)

    def _cat(self, path: str, offset: int = 0) -> bytes:
        """The object as the store has it now (locks read this, never a scan's listing)."""
        with _translated(path):
            return bytes(self.fs.cat_file(self._p(path), start=offset or None))

    def read_ranges(self, path: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of each (start, end) range, fetched concurrently."""
        asked = [r for r in ranges if r[1] > r[0]]  # a store refuses an empty range
        data: list = []
        if asked:
            p = self._p(path)
            with _translated(path):
                data = self.fs.cat_ranges(
                    [p] * len(asked), [r[0] for r in asked], [r[1] for r in asked]
                )
        got = iter(data)
        return [bytes(next(got)) if r[1] > r[0] else b"" for r in ranges]

    def _records(self, path: str) -> list[str] | None:
        """The record objects of an append-only file (the journal), oldest first; None if
        it has none or is not one."""
        if path.rsplit("/", 1)[-1] not in APPEND_ONLY:
            return None
        folder = path + RECORDS
        try:
            infos = self._ls(folder)
        except OSError:
            return None
        names = sorted(str(i["name"]).rsplit("/", 1)[-1] for i in infos if i.get("type") == "file")
        return [f"{folder}/{n}" for n in names] if names else None

    # ------------------------------------------------------------- writing

    def write_atomic(self, path: str, data: bytes) -> None:
        """One put: the object store replaces an object whole or not at all."""
        with _translated(path):
            self.fs.pipe_file(self._p(path), data)

    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` only if no object has that name (a conditional write); False if
        one has."""
        if self.protocol not in ("s3", "s3a", "memory"):  # no conditional put: best effort
            if self.exists(path):
                return False
            self.write_atomic(path, data)
            return True
        try:
            with _translated(path):
                self.fs.pipe_file(self._p(path), data, mode="create")
        except FileExistsError:
            return False
        except OSError as exc:
            if "precondition" in str(exc).lower() or exc.errno == errno.EEXIST:
                return False
            raise
        return True

    def appender(self, path: str) -> _RecordAppender:
        return _RecordAppender(self, path)

    def remove(self, path: str) -> None:
        with _translated(path):
            if not self.fs.isfile(self._p(path)):
                raise FileNotFoundError(errno.ENOENT, "no such object", path)
            self.fs.rm_file(self._p(path))

    def truncate(self, path: str) -> None:
        raise OSError(errno.ENOTSUP, "objects cannot be truncated", path)

    def rename(self, src: str, dst: str) -> None:
        """A server-side copy, then the source's delete (not atomic: a stop between the two
        leaves both; the journal says which set was being moved)."""
        with _translated(src):
            if self.fs.isdir(self._p(src)):
                self.fs.copy(self._p(src), self._p(dst), recursive=True)
                self.fs.rm(self._p(src), recursive=True)
                return
            if not self.fs.isfile(self._p(src)):
                raise FileNotFoundError(errno.ENOENT, "no such object", src)
            self.fs.copy(self._p(src), self._p(dst))
            self.fs.rm_file(self._p(src))

    def makedirs(self, path: str) -> None:
        """Object stores have no folders: a prefix exists once an object is under it."""

    def realpath(self, path: str) -> str:
        """No links on an object store; a missing bucket or prefix raises here."""
        if not self.exists(path):
            raise FileNotFoundError(errno.ENOENT, "no such object, prefix or bucket", path)
        return path

    @contextlib.contextmanager
    def lock(self, path: str, timeout: float) -> Iterator[None]:
        """A lock object created with a conditional write; see the module's doc."""
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = 0.05
        while not self._take_lock(path, owner):
            if time.monotonic() >= deadline:
                raise LockTimeout(path)
            time.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 2, 1.0)
        try:
            yield
        finally:
            self._release_lock(path, owner)

    def _lock_body(self, owner: str) -> bytes:
        now = time.time()
        body = {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
                "taken": now, "expires": now + LOCK_TTL}  # fmt: skip
        return json.dumps(body).encode()

    def _take_lock(self, path: str, owner: str) -> bool:
        if self.create_exclusive(path, self._lock_body(owner)):
            return True
        try:
            with _translated(path):
                info = self.fs.info(self._p(path))
            held = json.loads(self._cat(path))
        except FileNotFoundError:
            return False  # released meanwhile: try again
        except (OSError, ValueError):
            held = {}
        if float(held.get("expires", 0) if isinstance(held, dict) else 0) > time.time():
            return False
        if not self._replace_if_unchanged(path, info, self._lock_body(owner)):
            return False
        print(
            f"janitor: took over the expired lock {path} "
            f"(held by {held.get('host', '?')} pid {held.get('pid', '?')})",
            file=sys.stderr,
        )
        return True

    def _replace_if_unchanged(self, path: str, info: Mapping[str, Any], data: bytes) -> bool:
        """Overwrite ``path`` only if it is still the object ``info`` describes (S3's
        ``If-Match``); stores without conditional overwrites refuse takeovers."""
        etag = info.get("ETag")
        if self.protocol not in ("s3", "s3a") or not etag:
            if self.protocol != "memory":
                return False
            self.fs.pipe_file(self._p(path), data)  # memory://: one process, tests only
            return True
        try:
            with _translated(path):
                self.fs.pipe_file(self._p(path), data, IfMatch=etag)
        except OSError:
            return False
        return True

    def _release_lock(self, path: str, owner: str) -> None:
        try:
            held = json.loads(self._cat(path))
        except (OSError, ValueError):
            return
        if isinstance(held, dict) and held.get("owner") == owner:
            with contextlib.suppress(OSError), _translated(path):
                self.fs.rm_file(self._p(path))

    def local_path(self, path: str) -> str | None:
        return None

    @contextlib.contextmanager
    def temp_dir(self, folder: str, prefix: str) -> Iterator[str]:
        """A local folder to prepare files in; ``publish`` uploads them to ``folder``."""
        tmp = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")
        try:
            yield tmp
        finally:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    def sync_file(self, path: str) -> int:
        return fsync_path(path)  # a local file in temp_dir

    def publish(self, tmp: str, final: str, *, replace: bool) -> bool:
        """Upload the local file ``tmp`` as ``final`` in one put: replacing what is there, or
        only if nothing is (a conditional write)."""
        with open(tmp, "rb") as fh:
            data = fh.read()
        if replace:
            self.write_atomic(final, data)
            return True
        return self.create_exclusive(final, data)

    def same_file(self, a: str, b: str) -> bool:
        return self._p(a) == self._p(b)

    def readlink(self, path: str) -> str:
        raise OSError(errno.EINVAL, "object stores have no links", path)

    def rmdir(self, path: str) -> None:
        """A prefix with nothing under it is gone already."""
        try:
            left = self._ls(path)
        except FileNotFoundError:
            return
        if left:
            raise OSError(errno.ENOTEMPTY, "not empty", path)

    def remove_tree(self, path: str) -> None:
        with _translated(path):
            self.fs.rm(self._p(path), recursive=True)

    def link_or_copy(self, src: str, dst: str) -> bool:
        """A server-side copy; never replaces ``dst``."""
        if self.exists(dst):
            raise FileExistsError(errno.EEXIST, "exists", dst)
        with _translated(src):
            self.fs.copy(self._p(src), self._p(dst))
        return False

    # ------------------------------------------------------------- billing facts

    def _s3(self) -> Any:
        return getattr(self.fs, "s3", None) if self.protocol in ("s3", "s3a") else None

    def _bucket_key(self, path: str) -> tuple[str, str]:
        bucket, _, key = self._p(path).partition("/")
        return bucket, key

    def versioned(self, path: str) -> bool | None:
        """Whether the bucket keeps old versions of deleted objects (None: cannot tell)."""
        if self._s3() is None:
            return None
        bucket, _ = self._bucket_key(path)
        try:
            out = self._call("get_bucket_versioning", Bucket=bucket)
        except OSError:
            return None
        return out.get("Status") in ("Enabled", "Suspended")

    def _call(self, method: str, **kwargs: Any) -> dict:
        with _translated(f"{self.prefix}{kwargs.get('Bucket', '')}"):
            return self.fs.call_s3(method, **kwargs)

    def purge_versions(self, paths: Sequence[str]) -> tuple[int, int]:
        """Delete the noncurrent versions (and delete markers) of exactly these objects,
        which janitor removed; an object that exists again (written since) is left alone.
        Returns (versions deleted, their bytes); delete markers go too, uncounted."""
        if self._s3() is None:
            return 0, 0
        count = size = 0
        for path in paths:
            bucket, key = self._bucket_key(path)
            out = self._call("list_object_versions", Bucket=bucket, Prefix=key)
            versions = [v for v in out.get("Versions", []) if v["Key"] == key]
            markers = [m for m in out.get("DeleteMarkers", []) if m["Key"] == key]
            if any(v.get("IsLatest") for v in versions):
                continue  # the object is there again: its history is not ours to drop
            for v in versions:  # noncurrent versions first, then the delete marker
                self._call("delete_object", Bucket=bucket, Key=key, VersionId=v["VersionId"])
                count += 1
                size += int(v.get("Size", 0))
            for m in markers:
                self._call("delete_object", Bucket=bucket, Key=key, VersionId=m["VersionId"])
        return count, size

    def unfinished_uploads(self, path: str) -> list[UnfinishedUpload]:
        """Multipart uploads under ``path`` that were started and never completed."""
        if self._s3() is None:
            return []
        bucket, key = self._bucket_key(path)
        prefix = key.rstrip("/") + "/" if key else ""
        out = self._call("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
        uploads = []
        for u in out.get("Uploads", []):
            parts = self._call("list_parts", Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
            uploads.append(
                UnfinishedUpload(
                    f"{self.prefix}{bucket}/{u['Key']}",
                    _mtime({"LastModified": u.get("Initiated")}),
                    sum(int(p.get("Size", 0)) for p in parts.get("Parts", [])),
                )
            )
        return uploads
