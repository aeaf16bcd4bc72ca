#!/usr/bin/env python3
"""Compare arkiv with restic and borg (plus kopia and rustic when on PATH).

Every tool backs up the same generated PVC-like tree (`gen-tree`) in one run:

  init; first backup; unchanged re-backup; <mutate ~1% of the bytes>;
  backup after the 1% change; restore of the latest snapshot to an empty dir.

Each step is measured with `/usr/bin/time -f '%e %U %S %M'` (wall, user+sys
CPU, peak RSS) and the repository with `du -sb`. Restores are checked
against the tree with `gen-tree --digest`. A failing step is shown as FAILED
and the run goes on, so arkiv can be compared while its write path is still
being built.

Layout: ${ARKIV_BENCH_DIR:-<new temp dir>}/arkiv-compare.XXXX/{tree,repos,
restore,home,logs,results.json}. Point ARKIV_BENCH_DIR at an NFS mount to
benchmark NFS. The run directory is deleted afterwards unless --keep.

Compression (comparable, not identical; the table header repeats this):
  arkiv  --compression zstd-fastest
  kopia  policy --compression zstd-fastest            (klauspost zstd, fastest)
  restic --compression auto (restic's default)        (klauspost zstd, default
         level, about zstd -3; --restic-compression fastest matches
         kopia/arkiv but needs restic >= 0.16; Debian 12 has 0.14)
  borg   --compression zstd,1 (repokey-blake2)
  rustic its default compression (zstd level 3)

Usage: benches/compare.py [--scale 1.0] [--tools arkiv,restic,borg,kopia,rustic]
                          [--keep] [--drop-caches] [--json FILE] ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "arkiv-bench-password"
STEPS = ["first backup", "unchanged re-backup", "backup after 1% change", "restore"]
DEFAULT_TOOLS = ["arkiv", "restic", "borg", "kopia", "rustic"]
OPTIONAL_TOOLS = {"kopia", "rustic"}  # used only when found on PATH
APT_PACKAGES = {"restic": "restic", "borg": "borgbackup"}

# Targets from issue 3, as (other tool, step) -> max ratio arkiv/other of wall time.
WALL_TARGETS = {
    ("kopia", "first backup"): 0.5,
    ("kopia", "unchanged re-backup"): 0.5,
    ("kopia", "restore"): 0.33,
    ("restic", "first backup"): 0.46,
    ("restic", "unchanged re-backup"): 0.23,
    ("restic", "restore"): 0.39,
}
REPO_TARGETS = {"kopia": 1.0}  # repository size after the first backup
RSS_TARGET_MIB = 100.0


@dataclass
class Measurement:
    ok: bool
    wall: float | None = None
    cpu: float | None = None
    rss_kib: int | None = None
    repo_bytes: int | None = None
    note: str = ""


@dataclass
class Tool:
    """How to drive one backup program. Commands are argv lists."""

    name: str
    root: Path  # the run directory
    tree: Path
    env: dict = field(default_factory=dict)
    snapshots: int = 0

    @property
    def repo(self) -> Path:
        return self.root / "repos" / self.name

    @property
    def home(self) -> Path:
        return self.root / "home" / self.name

    def base_env(self) -> dict:
        env = dict(os.environ)
        # Per-tool config and cache dirs: no tool sees another's state or ~.
        env.update(
            HOME=str(self.home),
            XDG_CACHE_HOME=str(self.home / "cache"),
            XDG_CONFIG_HOME=str(self.home / "config"),
        )
        env.update(self.env)
        return env

    def version(self) -> list[str]:
        return [self.name, "--version"]

    def init(self) -> list[list[str]]:
        raise NotImplementedError

    def backup(self) -> list[str]:
        raise NotImplementedError

    def restore(self, target: Path) -> tuple[list[str], Path | None]:
        """argv and working directory."""
        raise NotImplementedError

    def pre_restore(self) -> None:
        """Unmeasured preparation (e.g. looking up the latest snapshot id)."""


class Arkiv(Tool):
    def __init__(self, *a, binary: Path, **kw):
        super().__init__(*a, **kw)
        self.binary = binary
        self.env = {"ARKIV_PASSWORD": PASSWORD}

    @property
    def url(self) -> str:
        return f"filesystem://{self.repo}"  # repo is absolute: filesystem:///PATH

    def version(self):
        return [str(self.binary), "--version"]

    def init(self):
        return [[str(self.binary), "repository", "create", "--repo", self.url]]

    def backup(self):
        return [str(self.binary), "snapshot", "create", str(self.tree),
                "--compression", "zstd-fastest", "--repo", self.url]

    def restore(self, target):
        return [str(self.binary), "restore", "latest", str(target), "--repo", self.url], None


class Restic(Tool):
    def __init__(self, *a, compression: str, **kw):
        super().__init__(*a, **kw)
        self.compression = compression
        self.env = {"RESTIC_REPOSITORY": str(self.repo), "RESTIC_PASSWORD": PASSWORD}

    def version(self):
        return ["restic", "version"]

    def init(self):
        return [["restic", "init", "--repository-version", "2"]]

    def backup(self):
        return ["restic", "backup", "--compression", self.compression, "--host", "bench", str(self.tree)]

    def restore(self, target):
        return ["restic", "restore", "latest", "--host", "bench", "--target", str(target)], None


class Borg(Tool):
    def __init__(self, *a, compression: str, **kw):
        super().__init__(*a, **kw)
        self.compression = compression
        self.env = {
            "BORG_PASSPHRASE": PASSWORD,
            "BORG_BASE_DIR": str(self.home),
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
            "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
        }

    def init(self):
        return [["borg", "init", "--encryption", "repokey-blake2", str(self.repo)]]

    def backup(self):
        self.snapshots += 1
        return ["borg", "create", "--compression", self.compression,
                f"{self.repo}::snap-{self.snapshots}", str(self.tree)]

    def restore(self, target):
        # borg extracts into the working directory.
        return ["borg", "extract", f"{self.repo}::snap-{self.snapshots}"], target


class Kopia(Tool):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.env = {"KOPIA_PASSWORD": PASSWORD, "KOPIA_CHECK_FOR_UPDATES": "false"}
        self.latest = ""

    def k(self, *args) -> list[str]:
        return ["kopia", "--config-file", str(self.home / "repository.config"), *args]

    def init(self):
        return [
            self.k("repository", "create", "filesystem", "--path", str(self.repo),
                   "--cache-directory", str(self.home / "cache")),
            self.k("policy", "set", "--global", "--compression", "zstd-fastest"),
        ]

    def backup(self):
        return self.k("snapshot", "create", str(self.tree))

    def pre_restore(self):
        out = subprocess.run(self.k("snapshot", "list", str(self.tree), "--json"),
                             env=self.base_env(), capture_output=True, text=True, check=True)
        self.latest = json.loads(out.stdout)[-1]["id"]

    def restore(self, target):
        return self.k("restore", self.latest, str(target)), None


class Rustic(Tool):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.env = {"RUSTIC_REPOSITORY": str(self.repo), "RUSTIC_PASSWORD": PASSWORD,
                    "RUSTIC_NO_PROGRESS": "true"}

    def init(self):
        return [["rustic", "init"]]

    def backup(self):
        return ["rustic", "backup", str(self.tree)]

    def restore(self, target):
        return ["rustic", "restore", "latest", str(target)], None


def log(msg: str) -> None:
    print(f"[compare] {msg}", file=sys.stderr, flush=True)


def run(argv, **kw):
    log("$ " + " ".join(map(str, argv)))
    return subprocess.run(argv, check=True, **kw)


def du_bytes(path: Path) -> int | None:
    try:
        out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0])
    except (subprocess.CalledProcessError, ValueError, IndexError):
        return None


def drop_caches() -> None:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as e:
        log(f"cannot drop caches ({e}); continuing with warm caches")


def ensure_packages(tools: list[str], install: bool) -> None:
    missing = [APT_PACKAGES[t] for t in tools if t in APT_PACKAGES and not shutil.which(t)]
    if not Path("/usr/bin/time").exists():
        missing.append("time")
    if not missing:
        return
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        log(f"missing {missing}; install them (apt-get install -y {' '.join(missing)}) or run as root")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", *missing], env=env).returncode != 0:
        run(["apt-get", "update"], env=env)
        run(["apt-get", "install", "-y", *missing], env=env)


def cargo_target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))


def build(what: str, package: str, binary: str) -> Path | None:
    cmd = ["cargo", "build", "--release", "-p", package, "--bin", binary]
    log(f"building {what}: {' '.join(cmd)}")
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    path = cargo_target_dir() / "release" / binary
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
        log(f"building {what} failed (exit {result.returncode}): " + "; ".join(errors[-3:]))
        return None
    return path


def measure(tool: Tool, name: str, argv: list[str], cwd: Path | None, logs: Path,
            timeout: float, drop: bool) -> Measurement:
    if drop:
        drop_caches()
    else:
        # No step pays for flushing an earlier step's writes (another tool's, often): dirty
        # pages expire after 30 s and the flusher then competes for the CPUs and the disk.
        os.sync()
    stats = logs / f"{tool.name}-{name}.time"
    out = logs / f"{tool.name}-{name}.log"
    log(f"{tool.name}: {name}: {' '.join(argv)}")
    with open(out, "w") as f:
        try:
            rc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(stats), *argv],
                                cwd=cwd, env=tool.base_env(), stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return Measurement(False, note=f"timed out after {timeout:.0f} s")
        except FileNotFoundError as e:
            return Measurement(False, note=str(e))
    m = Measurement(rc == 0)
    try:
        # On failure time(1) writes "Command exited with non-zero status N" first.
        e, u, s, rss = stats.read_text().strip().splitlines()[-1].split()
        m.wall, m.cpu, m.rss_kib = float(e), float(u) + float(s), int(rss)
    except (OSError, ValueError, IndexError):
        pass
    if rc != 0:
        tail = [line for line in out.read_text(errors="replace").splitlines() if line.strip()][-1:]
        m.note = f"exit {rc}: {tail[0][:160] if tail else ''} (log: {out})"
    return m


def find_restored_root(target: Path, tree: Path) -> Path:
    """restic, rustic and borg restore the full source path; kopia and arkiv the root."""
    nested = target / str(tree).lstrip("/")
    return nested if nested.is_dir() else target


def digest(gen_tree: Path, path: Path) -> str:
    return subprocess.run([str(gen_tree), str(path), "--digest"], capture_output=True, text=True,
                          check=True).stdout.strip()


# ---------------------------------------------------------------- report


def fmt_num(v, spec=".2f") -> str:
    return "–" if v is None else format(v, spec)


def mib(b) -> float | None:
    return None if b is None else b / 2**20


def ratio(a, b) -> float | None:
    return None if a is None or b in (None, 0) else a / b


def report(results: dict, tools: list[str], primary: str, info: dict) -> str:
    lines = []
    t = info["tree"]
    lines.append(f"## Backup comparison: {t['files']} files, {t['bytes'] / 1e9:.3f} GB "
                 f"(scale {info['scale']}), {info['cores']} cores, {info['where']}")
    lines.append("")
    lines.append("Compression: " + "; ".join(info["compression"][n] for n in tools))
    lines.append("Versions: " + "; ".join(info["versions"].get(n, n) for n in tools))
    lines.append("")
    lines.append("| step | tool | wall s | CPU s | peak RSS MiB | repo MiB | note |")
    lines.append("|---|---|---:|---:|---:|---:|---|")
    for step in STEPS:
        for name in tools:
            m = results[name].get(step)
            if m is None:
                continue
            status = "" if m.ok else "**FAILED** "
            lines.append(
                f"| {step} | {name} | {fmt_num(m.wall)} | {fmt_num(m.cpu)} | "
                f"{fmt_num(mib(m.rss_kib * 1024) if m.rss_kib else None, '.1f')} | "
                f"{fmt_num(mib(m.repo_bytes), '.1f')} | {status}{m.note} |")
    others = [n for n in tools if n != primary]
    if primary in tools and others:
        lines.append("")
        lines.append(f"Ratios {primary}/other (lower is better for {primary}; "
                     f"target in brackets, ✓ met, ✗ missed):")
        lines.append("")
        header = "| step | metric | " + " | ".join(f"{primary}/{o}" for o in others) + " |"
        lines.append(header)
        lines.append("|---|---|" + "---:|" * len(others))
        for step in STEPS:
            p = results[primary].get(step)
            for metric, get in [("wall", lambda m: m.wall), ("CPU", lambda m: m.cpu),
                                ("peak RSS", lambda m: m.rss_kib),
                                ("repo size", lambda m: m.repo_bytes)]:
                if metric == "repo size" and step == "restore":
                    continue
                cells = []
                for o in others:
                    om = results[o].get(step)
                    r = None
                    if p and om and p.ok and om.ok:
                        r = ratio(get(p), get(om))
                    cell = "n/a" if r is None else f"{r:.2f}×"
                    target = None
                    if metric == "wall" and primary == "arkiv":
                        target = WALL_TARGETS.get((o, step))
                    if metric == "repo size" and primary == "arkiv" and step == "first backup":
                        target = REPO_TARGETS.get(o)
                    if target is not None:
                        mark = "" if r is None else (" ✓" if r <= target else " ✗")
                        cell += f" [≤{target}]{mark}"
                    cells.append(cell)
                lines.append(f"| {step} | {metric} | " + " | ".join(cells) + " |")
        if primary == "arkiv":
            peaks = [m.rss_kib for m in results["arkiv"].values() if m.ok and m.rss_kib]
            if peaks:
                peak = max(peaks) / 1024
                mark = "✓" if peak <= RSS_TARGET_MIB else "✗"
                lines.append("")
                lines.append(f"arkiv peak RSS over all steps: {peak:.1f} MiB "
                             f"[≤{RSS_TARGET_MIB:.0f}] {mark}")
    lines.append("")
    lines.append(f"Mutation: {info['mutation']}")
    for name in tools:
        v = info["restore_check"].get(name)
        if v:
            lines.append(f"Restore check {name}: {v}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="tree scale; 1.0 = 1.03 GB, 30,556 files")
    ap.add_argument("--tools", default=",".join(DEFAULT_TOOLS),
                    help="comma-separated; kopia and rustic are skipped when not on PATH")
    ap.add_argument("--primary", default="arkiv", help="tool whose ratios to the others are printed")
    ap.add_argument("--mutate", type=float, default=0.01, help="fraction of bytes changed (0.01)")
    ap.add_argument("--seed", type=int, default=1, help="mutation seed")
    ap.add_argument("--restic-compression", default="auto", help="auto (restic's default), off, max; fastest needs restic >= 0.16")
    ap.add_argument("--borg-compression", default="zstd,1", help="e.g. zstd,1 or lz4")
    ap.add_argument("--arkiv", type=Path, help="use this arkiv binary instead of building one")
    ap.add_argument("--gen-tree", type=Path, help="use this gen-tree binary instead of building one")
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install missing tools")
    ap.add_argument("--drop-caches", action="store_true",
                    help="drop the page cache before every step (root; cold-cache numbers)")
    ap.add_argument("--step-timeout", type=float, default=3600, help="seconds per step")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(wanted) - set(DEFAULT_TOOLS)
    if unknown:
        ap.error(f"unknown tools {sorted(unknown)}")
    ensure_packages(wanted, not args.no_install)

    gen_tree = args.gen_tree or build("gen-tree", "arkiv-benches", "gen-tree")
    if gen_tree is None:
        return 1
    arkiv_bin = args.arkiv
    arkiv_note = ""
    if "arkiv" in wanted and arkiv_bin is None:
        arkiv_bin = build("arkiv", "arkiv-mover", "arkiv")
        if arkiv_bin is None:
            arkiv_note = "build failed"

    tools: list[str] = []
    for t in wanted:
        if t == "arkiv" or shutil.which(t):
            tools.append(t)
        elif t in OPTIONAL_TOOLS:
            log(f"{t} not on PATH; skipped")
        else:
            log(f"{t} not installed; skipped")

    base = Path(os.environ.get("ARKIV_BENCH_DIR") or tempfile.mkdtemp(prefix="arkiv-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="arkiv-compare.", dir=base)).resolve()
    tree = root / "tree"
    logs = root / "logs"
    for d in ["repos", "restore", "home", "logs"]:
        (root / d).mkdir()
    log(f"run directory {root}")

    try:
        t0 = time.monotonic()
        out = run([str(gen_tree), str(tree), "--scale", str(args.scale)],
                  capture_output=True, text=True).stdout.strip()
        log(f"generated in {time.monotonic() - t0:.1f} s: {out}")
        files, nbytes = int(out.split()[0]), int(out.split()[2])

        common = dict(root=root, tree=tree)
        drivers: dict[str, Tool] = {}
        for name in tools:
            if name == "arkiv":
                drivers[name] = Arkiv("arkiv", binary=arkiv_bin or Path("arkiv-not-built"), **common)
            elif name == "restic":
                drivers[name] = Restic("restic", compression=args.restic_compression, **common)
            elif name == "borg":
                drivers[name] = Borg("borg", compression=args.borg_compression, **common)
            elif name == "kopia":
                drivers[name] = Kopia("kopia", **common)
            elif name == "rustic":
                drivers[name] = Rustic("rustic", **common)
        versions = {}
        for name, d in drivers.items():
            d.home.mkdir(parents=True)
            try:
                v = subprocess.run(d.version(), env=d.base_env(), capture_output=True, text=True,
                                   timeout=60)
                versions[name] = (v.stdout or v.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                versions[name] = f"{name} (version unknown)"

        results: dict[str, dict[str, Measurement]] = {n: {} for n in tools}
        broken: dict[str, str] = {}
        if arkiv_note and "arkiv" in tools:
            broken["arkiv"] = arkiv_note

        def step(name: str, label: str, key: str, argv, cwd=None):
            d = drivers[name]
            if name in broken:
                results[name][label] = Measurement(False, note=f"skipped: {broken[name]}")
                return
            m = measure(d, key, argv, cwd, logs, args.step_timeout, args.drop_caches)
            if label != "restore":
                m.repo_bytes = du_bytes(d.repo)
            results[name][label] = m

        # Phase 1: every tool sees the original tree.
        for name, d in drivers.items():
            if name not in broken:
                for i, argv in enumerate(d.init()):
                    m = measure(d, f"init{i}", argv, None, logs, args.step_timeout, False)
                    if not m.ok:
                        broken[name] = f"init failed: {m.note}"
                        break
            step(name, "first backup", "backup1", d.backup())
            step(name, "unchanged re-backup", "backup2", d.backup())

        # The 1% change, once, for everyone.
        mutation = run([str(gen_tree), str(tree), "--mutate", str(args.mutate), "--seed", str(args.seed)],
                       capture_output=True, text=True).stdout.strip()
        log(mutation)
        want = digest(gen_tree, tree)

        # Phase 2: back up the changed tree, then restore it.
        restore_check = {}
        for name, d in drivers.items():
            step(name, "backup after 1% change", "backup3", d.backup())
            target = root / "restore" / name
            target.mkdir()
            if name not in broken:
                try:
                    d.pre_restore()
                except (subprocess.CalledProcessError, OSError, ValueError, KeyError, IndexError) as e:
                    log(f"{name}: preparing restore failed: {e}")
            argv, cwd = d.restore(target)
            step(name, "restore", "restore", argv, cwd=cwd if cwd else None)
            if results[name]["restore"].ok:
                got_root = find_restored_root(target, tree)
                got = digest(gen_tree, got_root)
                restore_check[name] = ("identical to the source tree" if got == want
                                       else f"MISMATCH: digest {got} != {want} ({got_root})")
                if got != want:
                    results[name]["restore"].note = "restored tree differs from source"
        # Restored trees are removed only now: on ext4, creating tens of thousands of files
        # right after deleting as many costs seconds of kernel time (inode allocation skips
        # recently deleted inodes), which would land on whichever tool restores next.
        for name in drivers:
            shutil.rmtree(root / "restore" / name, ignore_errors=True)

        info = {
            "tree": {"files": files, "bytes": nbytes},
            "scale": args.scale,
            "cores": os.cpu_count(),
            "where": f"ARKIV_BENCH_DIR={base}" if os.environ.get("ARKIV_BENCH_DIR") else f"temp dir {base}",
            "compression": {
                "arkiv": "arkiv zstd-fastest",
                "restic": f"restic {args.restic_compression}"
                          + (" (restic default ≈ zstd -3)" if args.restic_compression == "auto" else ""),
                "borg": f"borg {args.borg_compression} (repokey-blake2)",
                "kopia": "kopia zstd-fastest",
                "rustic": "rustic default (zstd 3)",
            },
            "versions": versions,
            "mutation": mutation,
            "restore_check": restore_check,
        }
        text = report(results, tools, args.primary, info)
        print(text)
        payload = {
            "info": info,
            "results": {n: {s: vars(m) for s, m in r.items()} for n, r in results.items()},
        }
        (root / "results.json").write_text(json.dumps(payload, indent=2))
        if args.json:
            args.json.write_text(json.dumps(payload, indent=2))
        return 0
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            if not os.environ.get("ARKIV_BENCH_DIR"):
                shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
