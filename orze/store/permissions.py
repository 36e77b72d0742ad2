"""Who may read what Orze writes: one policy for the research directory, whatever the umask.

Every `orze` command starts with `restrict_umask()`: files are created 0640 and directories 0750
(nothing world-readable or writable, even under umask 000), for Orze's own files and for those of
the libraries it calls (torch, numpy). Records that hold what an agent or a user gave, verbatim
(runs/rejected/), are private on top: `private_mode(group)` is 0600, or 0640 when the project names a
group (`storage.group` in configs/orze.yaml) that is to read them.

With a group configured, `share_with_group` gives runs/ and its directories to that group with the
set-group-ID bit, so every file created below them afterwards belongs to the group (Linux and BSD
semantics) without a chown per file.
"""

from __future__ import annotations

import grp
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

UMASK = 0o027     # files 0640, directories 0750


def restrict_umask() -> None:
    os.umask(UMASK)


def private_mode(group: str | None) -> int:
    return 0o640 if group else 0o600


def group_id(group: str) -> int:
    """The numeric id of `group` (a name or a number); ValueError naming it when it is unknown."""
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise ValueError(f"storage.group: no group named '{group}' on this machine "
                         f"(getent group {group}); name an existing group or remove the setting") from None


def share_with_group(directories: list[Path], group: str) -> None:
    """Give `directories` (which exist) to `group`, set-group-ID, rwxr-s---."""
    gid = group_id(group)
    for d in directories:
        try:
            st = d.stat()
            if st.st_gid != gid:
                os.chown(d, -1, gid)
            os.chmod(d, 0o2750)
        except PermissionError as e:
            # Another user's directory on a shared tree: theirs to fix; say so once per start.
            log.warning("%s: cannot give it to group %s (%s); files there keep their group", d, group, e)
