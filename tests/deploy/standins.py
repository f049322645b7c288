"""Local stand-ins for the images the compose files name but no registry here serves.

The compose files stay what a user runs (``python:3.11-slim-bookworm`` in the Dockerfile,
``nginx:1.27``, ``prom/prometheus:v3.5.0``): where a tag is missing from the engine, an image
built from Debian 12's packages is tagged under that name, for the tests only. Each
stand-in behaves like the original as far as the stack uses it: the same entrypoint and
command form, the same config and data paths, ``wget`` for the health check. A tag that
already exists and is not one of ours (an engine that could pull the real image) is left
alone.

The Debian base itself comes from ``debootstrap`` (about 1.5 min, once per engine data-root),
with the host's CA certificates baked in so that ``pip`` inside a build reaches PyPI through
an intercepting proxy.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

BASE = "maskserve-standin/debian:bookworm"
LABEL = "maskserve.stand-in"
MIRROR = "http://deb.debian.org/debian"
HOST_CAS = Path("/usr/local/share/ca-certificates")

_APT = (
    "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
    "--no-install-recommends {packages} >/dev/null && rm -rf /var/lib/apt/lists/*"
)

STANDINS: dict[str, str] = {
    # the official image: python on PATH as python3, pip and venv; LANG=C.UTF-8
    "python:3.11-slim-bookworm": "\n".join(
        [
            f"FROM {BASE}",
            _APT.format(packages="python3 python3-venv python3-pip"),
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
        ]
    ),
    # the official image: nginx -g 'daemon off;', config at /etc/nginx/nginx.conf, logs on
    # the container's stdout/stderr, SIGQUIT for a graceful stop
    "nginx:1.27": "\n".join(
        [
            f"FROM {BASE}",
            _APT.format(packages="nginx"),
            "RUN ln -sf /dev/stdout /var/log/nginx/access.log"
            " && ln -sf /dev/stderr /var/log/nginx/error.log",
            "STOPSIGNAL SIGQUIT",
            'CMD ["nginx", "-g", "daemon off;"]',
        ]
    ),
    # the official image: ENTRYPOINT the binary, arguments from the compose `command`,
    # runs as nobody with its data in /prometheus, wget for the health check
    "prom/prometheus:v3.5.0": "\n".join(
        [
            f"FROM {BASE}",
            _APT.format(packages="prometheus wget"),
            "RUN mkdir -p /prometheus && chown nobody:nogroup /prometheus",
            "USER nobody",
            "WORKDIR /prometheus",
            "EXPOSE 9090",
            'ENTRYPOINT ["/usr/bin/prometheus"]',
            'CMD ["--config.file=/etc/prometheus/prometheus.yml",'
            ' "--storage.tsdb.path=/prometheus"]',
        ]
    ),
}


def _docker(*args: str, stdin: bytes | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args[:3])} failed ({done.returncode}):\n"
            + done.stderr.decode(errors="replace")[-4000:]
        )
    return done.stdout.decode()


def _label(tag: str) -> str | None:
    """The stand-in label of ``tag``; "" for a foreign image, None when the tag is missing."""
    done = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', tag],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    label = done.stdout.strip()
    return "" if label in ("", "<no value>") else label


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_base() -> None:
    """``maskserve-standin/debian:bookworm`` from debootstrap, unless the engine has it."""
    if _label(BASE) is not None:
        return
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="standin-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=ca-certificates",
                "bookworm",
                str(rootfs),
                MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        for ca in HOST_CAS.glob("*.crt"):  # an intercepting proxy's CA, for HTTPS in builds
            shutil.copy(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
        subprocess.run(
            ["chroot", str(rootfs), "update-ca-certificates"], check=True, capture_output=True
        )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.run(
            ["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True
        ).stdout
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    changes = [f"ENV {var}={bundle}" for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    changes += [f"LABEL {LABEL}=base", 'CMD ["bash"]']
    args = [arg for change in changes for arg in ("--change", change)]
    _docker("import", *args, "-", BASE, stdin=tar)


def ensure(tag: str) -> str:
    """Make sure ``tag`` exists; returns what was done ("present", "kept", "built")."""
    dockerfile = STANDINS[tag]
    digest = _digest(dockerfile)
    label = _label(tag)
    if label == "":
        return "present"  # a real image under that tag: use it
    if label == digest:
        return "kept"
    ensure_base()
    _docker(
        "build",
        "--network",
        "host",
        "--label",
        f"{LABEL}={digest}",
        "-t",
        tag,
        "-",
        stdin=dockerfile.encode(),
    )
    return "built"


def ensure_all() -> dict[str, str]:
    return {tag: ensure(tag) for tag in STANDINS}


if __name__ == "__main__":
    for tag, what in ensure_all().items():
        print(f"{tag}: {what}")
