"""`dcgan view FOLDER`: an exported page served to this computer only (127.0.0.1), for a
browser that will not run a page opened from disk, or for a link to open here. It serves
the folder's regular files and nothing else: no listings, nothing outside the folder."""

from __future__ import annotations

import contextlib
import errno
import functools
import http.server
import os
from collections.abc import Callable
from pathlib import Path

from dcgan.errors import DcganError, printable

HOST = "127.0.0.1"


def check_page_folder(folder: Path) -> Path:
    """The folder, resolved, if it holds an exported page; one line otherwise."""
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "not a folder"
        raise DcganError(
            f"{printable(folder)}: {what} (give the folder `export --format web` wrote)"
        )
    index = folder / "index.html"
    if index.is_symlink() or not index.is_file():
        raise DcganError(
            f"{printable(folder)}: no index.html, so not a page of `dcgan export --format web`"
        )
    return folder.resolve()


class PageHandler(http.server.SimpleHTTPRequestHandler):
    """Regular files inside the folder; everything else is 404."""

    root: Path

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        try:
            inside = path.resolve(strict=True).is_relative_to(self.root)
        except OSError:
            inside = False
        if not inside or path.is_symlink() or not path.is_file():
            self.send_error(404, "Not found")
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404, "Not found")
        return None

    def log_message(self, format: str, *args) -> None:
        pass  # a page load is dozens of requests; the command says where to look instead


def open_server(folder: Path, port: int) -> http.server.ThreadingHTTPServer:
    """A server of folder on HOST:port (0: any free port), listening, not yet serving."""
    root = check_page_folder(folder)
    handler = type("Handler", (PageHandler,), {"root": root})
    try:
        return http.server.ThreadingHTTPServer(
            (HOST, port), functools.partial(handler, directory=os.fspath(root))
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DcganError(f"--port {port}: in use by another program; give another") from None
        raise DcganError(f"--port {port}: cannot listen: {exc.strerror or exc}") from None


def serve(folder: Path, port: int, ready: Callable[[str], None]) -> None:
    """Serve folder until interrupted; ready(url) once listening."""
    with open_server(folder, port) as server:
        ready(f"http://{HOST}:{server.server_address[1]}/")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it is meant to stop
            server.serve_forever()
