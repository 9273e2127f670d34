"""docker-compose.yml and Dockerfile, checked without a Docker engine.

No daemon runs where the tests run, so these tests read the files the way Docker would:
compose's ${...} interpolation, bind mounts and build contexts resolved against the
repository, the Dockerfile's COPY sources filtered by .dockerignore, and the Orthanc
configuration the orthancteam image builds (JSON files in /etc/orthanc, then ORTHANC_JSON
merged over them). What they prove: every file a container needs is in the repository,
the plugin is pointed at the RIS service with the RIS's own token, the ports agree, and
no secret is written in the files.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from ris_app.config import SETTINGS

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
PLUGIN_ENTRY = REPO / "plugins" / "orthanc_ris_plugin.py"
SECRET_NAME = re.compile(r"token|password|secret|passwd|api_?key", re.IGNORECASE)
# A value for every secret variable the file refers to: what reaches a container must be
# one of these (or empty), so it can only have come from the environment.
SENTINEL = "sentinel-from-env-{}"


# --------------------------------------------------------------------------- compose
class MissingVariable(KeyError):
    """A ${VAR:?message} whose variable is unset: compose refuses to start."""


_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.DOTALL)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}."""

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        if m.group("plain"):
            return env.get(m.group("plain"), "")
        spec = _BRACED.match(m.group("braced"))
        assert spec, f"unsupported interpolation {m.group(0)!r}"
        name, op, arg = spec.group("name"), spec.group("op"), spec.group("arg")
        value = env.get(name)
        empty = value is None or ((op or "").startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if empty else value
        if op in (":?", "?"):
            if empty:
                raise MissingVariable(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return "" if empty else arg
        return value or ""

    return _VAR.sub(one, text)


def interpolate_tree(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(x, env) for x in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node


def _strings(node):
    """Every string value of a compose tree (what compose interpolates; comments are not)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def variables_used(node) -> set[str]:
    names = set()
    for text in _strings(node):
        for m in _VAR.finditer(text):
            if m.group("plain"):
                names.add(m.group("plain"))
            elif m.group("braced"):
                names.add(_BRACED.match(m.group("braced")).group("name"))
    return names


def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def sentinel_env() -> dict[str, str]:
    return {name: SENTINEL.format(name) for name in variables_used(raw_compose()) if SECRET_NAME.search(name)}


def compose(env: dict[str, str] | None = None) -> dict:
    """The compose file as Docker would run it with `env` (default: secrets set, nothing else)."""
    return interpolate_tree(raw_compose(), sentinel_env() if env is None else env)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def mounts(service: dict) -> list[tuple[str, str, str]]:
    """(type, source, target) of each volume entry: type "bind" or "volume"."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            out.append((entry["type"], entry.get("source", ""), entry["target"]))
            continue
        parts = entry.split(":")
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append((kind, source, target))
    return out


def host_path(source: str) -> Path:
    return (COMPOSE_FILE.parent / source).resolve()


def container_file(service: dict, path: str) -> Path | None:
    """The repository file a bind mount shows at `path` inside the container."""
    for kind, source, mounted_at in mounts(service):
        if kind != "bind":
            continue
        target = mounted_at.rstrip("/")
        if path == target:
            return host_path(source)
        if path.startswith(target + "/"):
            return host_path(source) / path[len(target) + 1 :]
    return None


def published(service: dict) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each short-syntax port entry."""
    out = []
    for entry in service.get("ports") or []:
        parts = str(entry).split(":")
        if len(parts) == 2:
            parts = ["0.0.0.0", *parts]
        address, host, container = parts
        out.append((address, int(host), int(container.split("/")[0])))
    return out


def deep_merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def orthanc_config(c: dict) -> dict:
    """The configuration the orthancteam image hands Orthanc: every JSON file mounted into
    /etc/orthanc, then the ORTHANC_JSON variable merged over them."""
    service = c["services"]["orthanc"]
    conf: dict = {}
    for kind, source, target in mounts(service):
        if kind == "bind" and target.startswith("/etc/orthanc/") and target.endswith(".json"):
            conf = deep_merge(conf, json.loads(host_path(source).read_text()))
        elif kind == "bind" and target.rstrip("/") == "/etc/orthanc":
            for f in sorted(host_path(source).glob("*.json")):
                conf = deep_merge(conf, json.loads(f.read_text()))
    extra = environment(service).get("ORTHANC_JSON")
    if extra:
        conf = deep_merge(conf, json.loads(extra))
    return conf


# --------------------------------------------------------------------------- Dockerfile
def dockerfile_path(service: dict) -> Path:
    build = service["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return host_path(context) / name


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):  # "**/x" also matches "x" at the top
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        ch = pattern[i]
        out.append("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z")


def dockerignored(path: str, dockerignore: Path) -> bool:
    """Whether `path` (relative to the context) is left out of the build context, with
    Docker's rules: the last matching pattern wins, `!` re-includes, and a pattern that
    matches a parent folder matches everything under it."""
    candidates = [path]
    parts = path.split("/")
    candidates += ["/".join(parts[:n]) for n in range(1, len(parts))]
    excluded = False
    for raw in dockerignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        if any(_glob_regex(pattern).match(c) for c in candidates):
            excluded = not negate
    return excluded


# =========================================================================== tests
def test_services_and_named_volumes_are_declared():
    c = compose()
    assert {"ris", "orthanc"} <= set(c["services"])
    declared = set(c.get("volumes") or {})
    for name, service in c["services"].items():
        for kind, source, _target in mounts(service):
            if kind == "volume":
                assert source in declared, f"{name}: named volume {source} is not declared"


def test_every_mounted_file_or_folder_exists_in_the_repo():
    c = compose()
    binds = [
        (name, source)
        for name, service in c["services"].items()
        for kind, source, _ in mounts(service)
        if kind == "bind"
    ]
    assert binds, "Orthanc needs the plugin and its configuration mounted"
    for name, source in binds:
        path = host_path(source)
        assert path.exists(), f"{name} mounts {source}, which is not in the repository"
        assert REPO in (path, *path.parents), f"{name} mounts {source}, outside the repository"


def test_build_context_and_dockerfile_exist():
    ris = compose()["services"]["ris"]
    assert dockerfile_path(ris).is_file()


def test_dockerfile_copies_only_what_exists_and_reaches_the_context():
    ris = compose()["services"]["ris"]
    dockerfile = dockerfile_path(ris)
    context = dockerfile.parent
    copies = [args for keyword, args in instructions(dockerfile) if keyword in ("COPY", "ADD")]
    assert copies
    for args in copies:
        assert not args.startswith("--from"), "multi-stage COPY: extend this test"
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        for source in words[:-1]:
            assert (context / source).exists(), f"COPY {source}: not in the repository"
            assert not dockerignored(source, context / ".dockerignore"), (
                f"COPY {source}: excluded by .dockerignore, the build would fail"
            )


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "data/secrets/api-token",
        "data/ris.sqlite3",
        ".venv/bin/python",
        ".git/config",
        "test-output/up.log",
        "ris_app/__pycache__/api.cpython-311.pyc",
    ],
)
def test_dockerignore_keeps_secrets_and_data_out_of_the_image(path):
    assert dockerignored(path, REPO / ".dockerignore")


def test_dockerfile_installs_the_project_and_serves_it_with_gunicorn_after_migrating():
    steps = instructions(dockerfile_path(compose()["services"]["ris"]))
    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert re.search(r"pip install '?\.(\[[a-z,]+\])?'?", runs)
    cmd = " ".join(
        " ".join(json.loads(args)) if args.startswith("[") else args for keyword, args in steps if keyword == "CMD"
    )
    assert "orthanc-ris migrate &&" in cmd
    assert cmd.index("orthanc-ris migrate") < cmd.index("gunicorn")
    assert "ris_app.wsgi:app" in cmd
    assert any(keyword == "USER" and args not in ("root", "0") for keyword, args in steps)


def test_plugin_settings_point_at_the_ris_service_with_the_plugins_own_token():
    c = compose()
    ris_env = environment(c["services"]["ris"])
    plugin = orthanc_config(c)["OrthancRIS"]
    # The names the plugin reads: a rename there must show up here.
    entry = PLUGIN_ENTRY.read_text()
    for key in ("OrthancRIS", "RisUrl", "ApiToken"):
        assert f'"{key}"' in entry
    url = urlsplit(plugin["RisUrl"])
    assert url.hostname == "ris" and "ris" in c["services"]
    assert url.port == int(ris_env["ORTHANC_RIS_HTTP_PORT"])
    assert url.port in {container for _, _, container in published(c["services"]["ris"])}
    assert ris_env["ORTHANC_RIS_HTTP_HOST"] == "0.0.0.0", "the RIS must accept the Orthanc container"
    assert plugin["ApiToken"] == ris_env["ORTHANC_RIS_PLUGIN_TOKEN"] == SENTINEL.format("ORTHANC_RIS_PLUGIN_TOKEN")
    assert plugin["ApiToken"] != ris_env["ORTHANC_RIS_API_TOKEN"]  # not the admin token


def test_the_python_script_is_our_plugin_mounted_from_the_repo():
    c = compose()
    orthanc = c["services"]["orthanc"]
    script = orthanc_config(c)["PythonScript"]
    assert container_file(orthanc, script) == PLUGIN_ENTRY.resolve()
    # The embedded interpreter imports the risbridge package from the script's folder.
    assert (PLUGIN_ENTRY.parent / "risbridge" / "__init__.py").is_file()
    assert environment(orthanc).get("PYTHON_PLUGIN_ENABLED") == "true"
    # The plugin sets its logger to this level: an empty one would stop it loading.
    assert environment(orthanc).get("ORTHANC_RIS_LOG_LEVEL")


def test_orthanc_answers_worklists_in_utf8_and_serves_dicomweb_and_ohif():
    c = compose()
    conf = orthanc_config(c)
    env = environment(c["services"]["orthanc"])
    assert conf["DefaultEncoding"] == "Utf8"
    assert conf.get("Worklists", {}).get("Enable") is not True, "one worklist handler: ours"
    assert conf["DicomWeb"]["Enable"] is True
    assert env.get("DICOM_WEB_PLUGIN_ENABLED") == "true"
    assert env.get("OHIF_PLUGIN_ENABLED") == "true"
    assert "/usr/share/orthanc/plugins/" in conf["Plugins"]
    assert env.get("TCP_NODELAY") == "1"


def test_only_stations_reach_dicom_in_docker_too():
    """The stations are Orthanc's modalities, put by the RIS and the sync worker with
    Orthanc's credentials; the MPPS SCP listens inside its container for the published port."""
    c = compose()
    conf = orthanc_config(c)
    assert not any(conf.get(f"DicomAlwaysAllow{k}") for k in ("Echo", "Store", "Find", "FindWorklist", "Get", "Move"))
    assert conf["DicomModalitiesInDatabase"] is True
    assert conf["DicomCheckCalledAet"] is True
    for name in ("ris", "sync-worker"):
        env = environment(c["services"][name])
        assert env["ORTHANC_RIS_ORTHANC_URL"] == "http://orthanc:8042"
        assert env["ORTHANC_RIS_ORTHANC_USERNAME"] and env["ORTHANC_RIS_ORTHANC_PASSWORD"]
    assert environment(c["services"]["mpps-scp"])["ORTHANC_RIS_MPPS_HOST"] == "0.0.0.0"


def test_the_ris_logs_in_to_orthanc_with_its_own_service_account():
    """Not the readers' admin account: it can be changed or revoked apart."""
    c = compose()
    users = orthanc_config(c)["RegisteredUsers"]
    for name in ("ris", "sync-worker"):
        env = environment(c["services"][name])
        user, password = env["ORTHANC_RIS_ORTHANC_USERNAME"], env["ORTHANC_RIS_ORTHANC_PASSWORD"]
        assert users.get(user) == password
        assert password == sentinel_env()["ORTHANC_RIS_ORTHANC_PASSWORD"]
    assert len(users) == 2 and "admin" in users and "orthanc-ris" in users


def test_data_lives_on_named_volumes():
    c = compose()
    conf = orthanc_config(c)
    on_volume = {target.rstrip("/") for kind, _, target in mounts(c["services"]["orthanc"]) if kind == "volume"}
    assert conf["StorageDirectory"].rstrip("/") in on_volume
    assert conf["IndexDirectory"].rstrip("/") in on_volume  # also holds the change-feed cursor
    ris = c["services"]["ris"]
    ris_home = environment(ris)["ORTHANC_RIS_HOME"]
    assert ris_home in {target for kind, _, target in mounts(ris) if kind == "volume"}


def test_ports_agree_between_services_and_configuration():
    c = compose()
    conf = orthanc_config(c)
    orthanc_ports = published(c["services"]["orthanc"])
    assert {container for _, _, container in orthanc_ports} == {conf["HttpPort"], conf["DicomPort"]}
    orthanc_url = urlsplit(environment(c["services"]["ris"])["ORTHANC_RIS_ORTHANC_URL"])
    assert (orthanc_url.hostname, orthanc_url.port) == ("orthanc", conf["HttpPort"])
    # Defaults: the same host ports as `orthanc-ris up`, Orthanc's HTTP on this host only.
    defaults = {s.env: s.default for s in SETTINGS}
    by_container = {container: (address, host) for address, host, container in orthanc_ports}
    assert by_container[conf["HttpPort"]] == ("127.0.0.1", int(defaults["ORTHANC_RIS_ORTHANC_HTTP_PORT"]))
    assert by_container[conf["DicomPort"]][1] == int(defaults["ORTHANC_RIS_DICOM_PORT"])
    assert conf["DicomAet"] == defaults["ORTHANC_RIS_AET"]
    assert published(c["services"]["ris"])[0][1] == int(defaults["ORTHANC_RIS_HTTP_PORT"])


def test_host_ports_follow_the_settings():
    env = dict(
        sentinel_env(),
        ORTHANC_RIS_HTTP_PORT="8080",
        ORTHANC_RIS_ORTHANC_HTTP_PORT="8043",
        ORTHANC_RIS_DICOM_PORT="11112",
        ORTHANC_RIS_AET="PACS1",
        ORTHANC_RIS_STABLE_AGE="5",
    )
    c = compose(env)
    conf = orthanc_config(c)
    assert {host for _, host, _ in published(c["services"]["orthanc"])} == {8043, 11112}
    assert published(c["services"]["ris"])[0][1:] == (8080, 5000)
    assert (conf["DicomAet"], conf["StableAge"]) == ("PACS1", 5)
    assert urlsplit(orthanc_config(c)["OrthancRIS"]["RisUrl"]).port == 5000  # inside: fixed


def test_remote_access_only_with_authentication():
    conf = orthanc_config(compose())
    if conf.get("RemoteAccessAllowed"):
        assert conf["AuthenticationEnabled"] is True
        users = conf["RegisteredUsers"]
        assert users and all(users.values())


def test_every_ris_setting_named_exists():
    known = {s.env for s in SETTINGS}
    used = {name for name in variables_used(raw_compose()) if name.startswith("ORTHANC_RIS_")}
    used |= {k for k in environment(compose()["services"]["ris"]) if k.startswith("ORTHANC_RIS_")}
    assert used <= known, f"not settings of the RIS: {sorted(used - known)}"


def _secret_values(node, key: str = ""):
    """Every value held under a secret-looking key, in environments and in ORTHANC_JSON."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "ORTHANC_JSON" and isinstance(v, str):
                yield from _secret_values(json.loads(v))
            elif k == "RegisteredUsers" and isinstance(v, dict):
                yield from ((f"RegisteredUsers.{u}", pw) for u, pw in v.items())
            else:
                yield from _secret_values(v, k)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_values(item, key)
    elif key and SECRET_NAME.search(key):
        yield key, node


def test_no_secret_is_written_in_the_files():
    values = list(_secret_values(compose()))
    assert any(k == "ApiToken" for k, _ in values) and any(k.startswith("RegisteredUsers") for k, _ in values)
    allowed = set(sentinel_env().values()) | {""}
    for key, value in values:
        assert value in allowed, f"{key} holds a literal value; take it from the environment"
    # Nor as the default of a secret variable, which would be used whenever it is unset.
    for text in _strings(raw_compose()):
        for m in _VAR.finditer(text):
            spec = _BRACED.match(m.group("braced") or "")
            if spec and SECRET_NAME.search(spec.group("name")) and spec.group("op") in (":-", "-"):
                assert spec.group("arg") == "", f"{m.group(0)}: a secret with a default value"
    for keyword, args in instructions(dockerfile_path(compose()["services"]["ris"])):
        if keyword in ("ENV", "ARG"):
            assert not SECRET_NAME.search(args), f"{keyword} {args}: secrets stay out of images"


@pytest.mark.parametrize(
    "missing",
    ["ORTHANC_RIS_API_TOKEN", "ORTHANC_RIS_PLUGIN_TOKEN", "ORTHANC_ADMIN_PASSWORD", "ORTHANC_RIS_ORTHANC_PASSWORD"],
)
def test_compose_refuses_to_start_without_a_required_secret(missing):
    env = sentinel_env()
    env.pop(missing)
    with pytest.raises(MissingVariable, match=missing):
        compose(env)


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$SET $SET", env) == "x d d  $SET x"
    assert interpolate("${SET:+alt}${EMPTY:+alt}", env) == "alt"
    with pytest.raises(MissingVariable):
        interpolate("${EMPTY:?needed}", env)
