"""A loopback server speaking the parts of the Hugging Face Hub HTTP API that the real
`huggingface_hub` client uses to download a model: repository info at a revision, the
file tree, and file resolution with ETag / commit / size headers, HEAD, byte ranges for
resuming, 401/403 for gated repositories and 404 for what does not exist — and to upload
one: repository creation, the preupload and commit endpoints, and the git-LFS batch API
with basic (single PUT) transfers, checked against their sha256. Writes need a token in
`writers` (401 without one, 403 with another). Clients must not use Xet
(HF_HUB_DISABLE_XET=1), a separate storage service this server does not speak.

It listens on 127.0.0.1 only, counts every request, and can cut a download short once
to test resuming.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".litertlm")
"""Files served as git-LFS objects (named by their sha256 in the client's cache), as the Hub
stores weights and bundles."""


@dataclasses.dataclass
class Repo:
    repo_id: str
    commits: dict[str, dict[str, bytes]]
    refs: dict[str, str]
    gated: bool = False
    tokens: frozenset[str] = frozenset()
    private: bool = False


def commit_sha(files: dict[str, bytes], salt: str = "") -> str:
    h = hashlib.sha1(salt.encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def front_matter(text: str) -> dict[str, str]:
    m = re.match(r"^---\n(.*?)\n---", text, re.S)
    pairs = (line.split(":", 1) for line in (m.group(1).splitlines() if m else []) if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs if v.strip()}


def read_dir(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, str]] = []
        """(method, path, Range header or "")"""
        self.cut: dict[str, int] = {}
        """file name -> bytes to send before dropping the connection (once)."""
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.writers: set[str] = set()
        """Tokens allowed to create repositories and commit."""
        self.lfs: dict[str, bytes] = {}
        """Uploaded LFS objects by sha256."""
        self.auth: list[str] = []
        """The Authorization header of every write request."""

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        branch: str = "main",
        tags: tuple[str, ...] = (),
        gated: bool = False,
        tokens: tuple[str, ...] = (),
    ) -> str:
        """Publish `files` as `branch` of `repo_id` (and as each tag); return the commit sha."""
        sha = commit_sha(files, repo_id + branch)
        repo = self.repos.setdefault(repo_id, Repo(repo_id, {}, {}, gated, frozenset(tokens)))
        repo.commits[sha] = files
        repo.refs[branch] = sha
        for tag in tags:
            repo.refs[tag] = sha
        return sha

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self._lock:
            return sum(1 for m, p, _ in self.requests if (method is None or m == method) and contains in p)

    def ranged(self, contains: str) -> list[str]:
        with self._lock:
            return [r for m, p, r in self.requests if m == "GET" and contains in p and r]

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

            def do_POST(self) -> None:
                hub._write(self)

            def do_PUT(self) -> None:
                hub._write(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- request handling ------------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(req.path).path)
        with self._lock:
            self.requests.append((req.command, path, req.headers.get("Range", "")))
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if m:
            return self._info(req, m.group(1), m.group(2) or "main")
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if m:
            return self._tree(req, m.group(1), m.group(2))
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            return self._resolve(req, m.group(1), m.group(2), m.group(3), head)
        self._error(req, 404, "EntryNotFound", "no such endpoint")

    def _send(self, req: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        req.send_response(status)
        for k, v in headers.items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)

    def _error(self, req: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        self._send(
            req, status, body, {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        )

    def _repo_and_commit(self, req: BaseHTTPRequestHandler, repo_id: str, revision: str) -> tuple[Repo, str] | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(req, 404, "RepoNotFound", f"Repository Not Found for url: {repo_id}")
            return None
        if repo.gated:
            auth = req.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
            if not token:
                self._error(
                    req, 401, "GatedRepo", f"Access to model {repo_id} is restricted. You must be authenticated."
                )
                return None
            if token not in repo.tokens:
                message = f"Access to model {repo_id} is restricted and you are not in the authorized list."
                self._error(req, 403, "GatedRepo", message)
                return None
        sha = repo.refs.get(revision) or (revision if revision in repo.commits else None)
        if sha is None:
            self._error(req, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo, sha

    def _info(self, req: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        found = self._repo_and_commit(req, repo_id, revision)
        if found is None:
            return
        repo, sha = found
        files = repo.commits[sha]
        body = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": sha,
            "gated": "manual" if repo.gated else False,
            "disabled": False,
            "tags": [],
            "siblings": [{"rfilename": name} for name in sorted(files)],
            "cardData": front_matter(files.get("README.md", b"").decode(errors="replace")),
            "private": repo.private,
        }
        self._send(req, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _tree(self, req: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        found = self._repo_and_commit(req, repo_id, revision)
        if found is None:
            return
        repo, sha = found
        entries = []
        for name, data in sorted(repo.commits[sha].items()):
            entry = {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": name}
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        self._send(req, 200, json.dumps(entries).encode(), {"Content-Type": "application/json"})

    def _resolve(self, req: BaseHTTPRequestHandler, repo_id: str, revision: str, name: str, head: bool) -> None:
        found = self._repo_and_commit(req, repo_id, revision)
        if found is None:
            return
        repo, sha = found
        data = repo.commits[sha].get(name)
        if data is None:
            self._error(req, 404, "EntryNotFound", f"{name} does not exist at {revision}")
            return
        etag = hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else hashlib.sha1(data).hexdigest()
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if name.endswith(LFS_SUFFIXES):
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(data))
        status, body = 200, data
        rng = req.headers.get("Range")
        if rng and not head:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else len(data) - 1
                body = data[start : end + 1]
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        if head:
            req.send_response(200)
            for k, v in headers.items():
                req.send_header(k, v)
            req.send_header("Content-Length", str(len(data)))
            req.end_headers()
            return
        with self._lock:
            cut = self.cut.pop(name, None)
        if cut is not None and status == 200:
            # Announce the whole file, send part of it, and drop the connection.
            req.send_response(200)
            for k, v in headers.items():
                req.send_header(k, v)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body[:cut])
            req.wfile.flush()
            req.close_connection = True
            req.connection.shutdown(2)
            return
        self._send(req, status, body, headers)

    # -- uploads -----------------------------------------------------------------------

    def _body(self, req: BaseHTTPRequestHandler) -> bytes:
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(req.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    req.rfile.readline()
                    return data
                data += req.rfile.read(size)
                req.rfile.readline()
        return req.rfile.read(int(req.headers.get("Content-Length") or 0))

    def _json(self, req: BaseHTTPRequestHandler, status: int, body: object) -> None:
        self._send(req, status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _write(self, req: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(req.path).path)
        body = self._body(req)
        with self._lock:
            self.requests.append((req.command, path, ""))
            self.auth.append(req.headers.get("Authorization", ""))
        if not path.startswith("/lfs-upload/"):
            auth = req.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
            if not token:
                return self._error(req, 401, "Unauthorized", "Invalid username or password.")
            if token not in self.writers:
                return self._error(req, 403, "Forbidden", "You don't have the rights to create a model here")
        if path == "/api/validate-yaml":  # the client checks a README's metadata before committing it
            import yaml

            content = json.loads(body)["content"]
            m = re.match(r"^---\n(.*?)\n---", content, re.S)
            try:
                meta = yaml.safe_load(m.group(1)) if m else None
            except yaml.YAMLError as exc:
                return self._json(req, 400, {"errors": [{"message": str(exc)}]})
            if not isinstance(meta, dict):
                return self._json(req, 400, {"errors": [{"message": "the metadata is not a mapping"}]})
            return self._json(req, 200, {"errors": [], "warnings": []})
        if path == "/api/repos/create":
            spec = json.loads(body)
            repo_id = f"{spec['organization']}/{spec['name']}" if spec.get("organization") else spec["name"]
            if repo_id in self.repos:
                body = {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}
                return self._json(req, 409, body)
            self.add_repo(repo_id, {})
            self.repos[repo_id].private = spec.get("visibility") == "private" or bool(spec.get("private"))
            return self._json(req, 200, {"url": f"{self.url}/{repo_id}"})
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", path)
        if m:
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "lfs" if f["size"] > 1024 else "regular",
                      "shouldIgnore": False} for f in files]  # fmt: skip
            return self._json(req, 200, {"files": modes})
        m = re.fullmatch(r"/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if m:
            objects = []
            for obj in json.loads(body)["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in self.lfs:
                    entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            return self._json(req, 200, {"transfer": "basic", "objects": objects})
        m = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)
        if m:
            if hashlib.sha256(body).hexdigest() != m.group(1):
                return self._error(req, 400, "BadRequest", "the content does not match its oid")
            self.lfs[m.group(1)] = body
            return self._send(req, 200, b"", {})
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", path)
        if m:
            repo = self.repos.get(m.group(1))
            if repo is None:
                return self._error(req, 404, "RepoNotFound", f"Repository Not Found for url: {m.group(1)}")
            files = dict(repo.commits[repo.refs[m.group(2)]])
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] == "lfsFile":
                    oid = item["value"]["oid"]
                    if oid not in self.lfs:
                        return self._error(req, 400, "BadRequest", f"LFS object {oid} was not uploaded")
                    files[item["value"]["path"]] = self.lfs[oid]
            sha = self.add_repo(repo.repo_id, files, branch=m.group(2))
            return self._json(req, 200, {"commitUrl": f"{self.url}/{repo.repo_id}/commit/{sha}", "commitOid": sha})
        self._error(req, 404, "EntryNotFound", "no such endpoint")
