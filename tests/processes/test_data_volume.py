"""A SQLite data folder this process cannot write: one clear error naming the path and its permissions."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from bot.data.engine import ensure_sqlite_folder
from bot.errors import DatabaseUnreachable, ExitCode

OTHER_UID = 123456  # an arbitrary uid without a passwd entry, as OpenShift assigns them


def _as_user(uid: int, gid: int, action: str, url: URL) -> str:
    """Run ensure_sqlite_folder(url) in a forked child as uid:gid; return `ok` or the error line it raised."""
    if os.getuid() != 0:
        pytest.skip("switching to another uid needs root; this run is not root")
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: drop to the user, try, report, and leave without running pytest's exit hooks
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            ensure_sqlite_folder(url)
            answer = "ok"
        except DatabaseUnreachable as error:
            answer = f"{int(error.exit_code)} {error.line()}"
        except BaseException as error:  # noqa: BLE001 - anything else is reported to the test as it is
            answer = f"unexpected {type(error).__name__}: {error}"
        os.write(write_end, answer.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(child, 0)
    assert answer, f"{action}: the child reported nothing"
    return answer


def _sqlite(path: Path) -> URL:
    """A SQLite URL for this file."""
    return URL.create("sqlite+aiosqlite", database=str(path))


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other users can traverse (pytest's own tmp_path sits under a root-only 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="bot-volume-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.slow
def test_a_root_owned_data_folder_names_the_path_the_owner_and_the_mode(shared_tmp: Path) -> None:
    """A 0755 root:root folder (a root-owned bind mount) refuses uid 123456 with exit 3, the path, owner and mode."""
    data = shared_tmp / "data"
    data.mkdir(mode=0o755)
    answer = _as_user(OTHER_UID, OTHER_UID, "root-owned folder", _sqlite(data / "bot.db"))
    assert answer.startswith(f"{int(ExitCode.DATABASE_UNREACHABLE)} "), answer
    assert f"the SQLite database folder {data} is not writable by this process" in answer
    assert f"uid {OTHER_UID} gid {OTHER_UID}" in answer and "owned by 0:0 with mode drwxr-xr-x" in answer
    assert "DATABASE_URL (credentials" not in answer


@pytest.mark.slow
def test_an_arbitrary_uid_in_group_0_writes_a_group_0_folder(shared_tmp: Path) -> None:
    """The image's layout (10001:0, 0770) lets any uid in group 0 use the folder, and create the file's folder."""
    data = shared_tmp / "data"
    data.mkdir()
    os.chown(data, 10001, 0)
    data.chmod(0o770)
    assert _as_user(OTHER_UID, 0, "group 0 folder", _sqlite(data / "nested" / "bot.db")) == "ok"
    assert (data / "nested").is_dir()


@pytest.mark.slow
def test_an_unwritable_database_file_and_an_uncreatable_folder_are_named(shared_tmp: Path) -> None:
    """A read-only database file, and a folder whose parent refuses its creation, each get their own line."""
    data = shared_tmp / "data"
    data.mkdir()
    os.chown(data, OTHER_UID, 0)
    database = data / "bot.db"
    database.write_bytes(b"")
    database.chmod(0o444)
    file_answer = _as_user(OTHER_UID, 0, "read-only file", _sqlite(database))
    assert f"the SQLite database file {database} is not writable by this process" in file_answer
    assert "mode -r--r--r--" in file_answer
    locked = shared_tmp / "locked"
    locked.mkdir(mode=0o755)
    folder_answer = _as_user(OTHER_UID, 0, "uncreatable folder", _sqlite(locked / "data" / "bot.db"))
    assert f"cannot create the SQLite database folder {locked / 'data'}: Permission denied" in folder_answer
    assert f"{locked} is owned by 0:0 with mode drwxr-xr-x" in folder_answer
