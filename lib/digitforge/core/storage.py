"""Where stored data lives. A location is a local path or a URL (file://, s3://, hdfs://, gs://, ...), and one
filesystem layer, pyarrow.fs, lists, reads and writes it: snapshot manifests, the Parquet readers (Petastorm,
pyarrow.parquet) and the checks before training, so a snapshot on S3 or HDFS goes through the same code as
one on local disk. Spark writes the same URLs through Hadoop's filesystems (spark_conf: s3:// is Hadoop's s3a).

Locations are strings, never pathlib.Path: Path("hdfs://nn/x") is "hdfs:/nn/x".
S3 credentials come from the usual places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an
instance role), never from the config; the config's `storage` section names the endpoint and region.
"""
from __future__ import annotations

import os
from urllib.parse import urlparse

FILE_SCHEME = "file://"
S3_SCHEMES = ("s3", "s3a")
# The storage section of the resolved config (configure()): each process that opens an s3:// location
# (a job's driver, a training rank) applies its config once.
_settings: dict = {}


class StorageError(ValueError):
    """A location no filesystem handles, or storage that cannot be reached: named with its setting."""


def configure(cfg: dict) -> None:
    """Apply the config's `storage` section (the S3 endpoint, region) to this process's filesystems."""
    _settings.clear()
    _settings.update(cfg.get("storage") or {})


def is_url(location) -> bool:
    """True for a URL with a scheme (file://, s3://, ...), False for a plain path."""
    return "://" in str(location)


def scheme(location) -> str:
    """The URL scheme of a location ('file' for a plain path)."""
    return urlparse(str(location)).scheme.lower() if is_url(location) else "file"


def to_url(location) -> str:
    """A URL for Petastorm/pyarrow/Spark: a plain path becomes file://<absolute path>, a URL stays as it is."""
    s = str(location)
    return s if is_url(s) else FILE_SCHEME + os.path.abspath(s)


def join(location, *parts: str) -> str:
    """A location inside `location` (a path stays a path, a URL a URL)."""
    return "/".join([str(location).rstrip("/"), *parts])


def child_url(location, *parts: str) -> str:
    """The URL of a folder inside `location` (a path or a URL), e.g. a snapshot's split."""
    return to_url(join(location, *parts))


def _s3_filesystem():
    import pyarrow.fs as pafs

    opts = {"region": _settings.get("s3_region") or "us-east-1"}
    if _endpoint_url(_settings):  # an S3-compatible server (MinIO, Ceph, moto): http(s)://host:port
        u = urlparse(_endpoint_url(_settings))
        opts.update(endpoint_override=u.netloc, scheme=u.scheme)
    return pafs.S3FileSystem(**opts)


def _endpoint_url(settings: dict) -> str | None:
    """The storage section's S3 endpoint as a URL (https:// when it names none), or None."""
    endpoint = settings.get("s3_endpoint")
    return (endpoint if "://" in endpoint else "https://" + endpoint) if endpoint else None


def petastorm_filesystem(location):
    """The filesystem Petastorm 0.13 reads and writes `location` through, or None to let it resolve its own
    (local paths, hdfs://). Petastorm lists datasets with pyarrow's legacy ParquetDataset, which takes only
    a legacy pyarrow.filesystem; for s3:// that is s3fs (fsspec's S3, with this config's endpoint) behind
    _LegacyFsspec. Picklable: materialize_dataset ships it to the executors."""
    if scheme(location) not in S3_SCHEMES:
        return None
    import s3fs

    return _legacy_fsspec()(s3fs.S3FileSystem(endpoint_url=_endpoint_url(_settings),
                                              client_kwargs={"region_name": _settings.get("s3_region") or "us-east-1"}))


def _legacy_fsspec():
    """pyarrow.filesystem.DaskFileSystem (the legacy wrapper of any fsspec filesystem) with the three calls
    legacy ParquetDataset makes that it leaves unimplemented; pyarrow's own S3FSWrapper calls s3fs's
    pre-async API and fails on s3fs 2023+. Hand-written because nothing maintained bridges the two."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyarrow.filesystem is deprecated: Petastorm needs it
        from pyarrow.filesystem import DaskFileSystem

    class _LegacyFsspec(DaskFileSystem):
        def isdir(self, path):
            return self.fs.isdir(path)

        def isfile(self, path):
            return self.fs.isfile(path)

        def walk(self, top_path):
            return self.fs.walk(top_path)

    return _LegacyFsspec


def filesystem(location, setting: str = "the location"):
    """(pyarrow filesystem, path inside it) for a local path or a URL. A scheme no filesystem handles is a
    StorageError naming `setting`."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    s = str(location)
    if not is_url(s):
        return pafs.LocalFileSystem(), os.path.abspath(s)
    u = urlparse(s)
    if u.scheme.lower() == "file":
        return pafs.LocalFileSystem(), u.path
    if u.scheme.lower() in S3_SCHEMES:
        return _s3_filesystem(), (u.netloc + u.path).rstrip("/")
    try:
        return pafs.FileSystem.from_uri(s)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OSError) as e:
        raise StorageError(f"{setting} {s}: no filesystem handles {u.scheme}:// here ({e}); "
                           f"use a local path, file://, s3://, hdfs:// or gs://") from None


def _fail(location, setting: str, e: Exception) -> StorageError:
    return StorageError(f"{setting} {location}: storage cannot be reached or read ({str(e).strip().splitlines()[0]})")


def exists(location, setting: str = "the location") -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(location, setting)
    try:
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as e:
        raise _fail(location, setting, e) from None


def read_bytes(location, setting: str = "the location") -> bytes:
    fs, path = filesystem(location, setting)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise _fail(location, setting, e) from None


def read_text(location, setting: str = "the location") -> str:
    return read_bytes(location, setting).decode()


def write_bytes(location, data: bytes, setting: str = "the location") -> None:
    """Write a file whole. Local files are written under a temporary name and renamed, so readers never
    see half a file; an object store's PUT is whole already."""
    fs, path = filesystem(location, setting)
    try:
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        tmp = f"{path}.{os.getpid()}.tmp" if scheme(location) == "file" else path
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        if tmp != path:
            fs.move(tmp, path)
    except OSError as e:
        raise _fail(location, setting, e) from None


def write_text(location, text: str, setting: str = "the location") -> None:
    write_bytes(location, text.encode(), setting)


def write_folder(location, files: dict[str, bytes], setting: str = "the location") -> None:
    """Replace the folder `location` by one holding `files` (name -> bytes). Locally the folder is written
    under a temporary name and renamed; on an object store the files are PUT in place (the caller names a
    complete folder only once it is written, e.g. a checkpoint's `latest`)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location, setting)
    local = scheme(location) == "file"
    target = f"{path}.tmp" if local else path
    try:
        for p in {target, path}:
            if fs.get_file_info(p).type != pafs.FileType.NotFound:
                fs.delete_dir(p)
        fs.create_dir(target, recursive=True)
        for name, data in files.items():
            with fs.open_output_stream(f"{target}/{name}") as f:
                f.write(data)
        if local:
            fs.move(target, path)
    except OSError as e:
        raise _fail(location, setting, e) from None


def subfolders(location, setting: str = "the location") -> list[str]:
    """The names of the folders directly inside `location` (none when it does not exist)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location, setting)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as e:
        raise _fail(location, setting, e) from None
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def files_under(location, suffix: str = "", setting: str = "the location") -> list[str]:
    """Paths (inside the filesystem) of the files in `location` whose names end in suffix."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location, setting)
    return sorted(i.path for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
                  if i.type == pafs.FileType.File and i.base_name.endswith(suffix))


def upload_folder(local_dir, location, setting: str = "the location") -> None:
    """Copy a local folder's files into `location` (a report rendered locally, then stored at a URL)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location, setting)
    try:
        fs.create_dir(path, recursive=True)
        pafs.copy_files(os.path.abspath(local_dir), path, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=fs)
    except OSError as e:
        raise _fail(location, setting, e) from None


def delete_folder(location) -> None:
    """Remove a folder and what it holds, if it is there (the partial files of a failed write)."""
    fs, path = filesystem(location)
    try:
        fs.delete_dir(path)
    except (FileNotFoundError, OSError):
        pass


def check_reachable(location, setting: str) -> None:
    """A clear StorageError naming `setting` when the location's filesystem cannot be used (unknown scheme,
    a server that does not answer, a bucket that is not there), before any work starts."""
    import pyarrow.fs as pafs

    fs, path = filesystem(location, setting)
    try:
        root = path.split("/", 1)[0] if scheme(location) in S3_SCHEMES else path
        if scheme(location) in S3_SCHEMES and fs.get_file_info(root).type == pafs.FileType.NotFound:
            raise StorageError(f"{setting} {location}: bucket {root} does not exist")
        fs.get_file_info(path)
    except OSError as e:
        raise _fail(location, setting, e) from None


def uses_s3(*locations) -> bool:
    return any(scheme(loc) in S3_SCHEMES for loc in locations if loc)


def spark_conf(cfg: dict) -> dict[str, str]:
    """Hadoop settings for Spark to write the config's s3:// locations through s3a (the same endpoint and
    region as pyarrow's); empty when nothing in the config is on S3."""
    if not uses_s3(*storage_locations(cfg)):
        return {}
    st = cfg.get("storage") or {}
    conf = {"spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
            "spark.hadoop.fs.s3a.endpoint.region": st.get("s3_region") or "us-east-1"}
    if _endpoint_url(st):
        u = urlparse(_endpoint_url(st))
        conf.update({"spark.hadoop.fs.s3a.endpoint": f"{u.scheme}://{u.netloc}",
                     "spark.hadoop.fs.s3a.path.style.access": "true",
                     "spark.hadoop.fs.s3a.connection.ssl.enabled": str(u.scheme == "https").lower()})
    return conf


def storage_locations(cfg: dict) -> list[str]:
    """The config's stored-data locations that Spark reads or writes and that may be URLs."""
    return [cfg["convert"]["snapshot_root"], cfg["ingest"]["staging_dir"]]
