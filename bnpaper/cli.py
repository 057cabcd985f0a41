"""The `bnpaper` command line: build the book, execute one chapter, run the benchmark.

bnpaper book [--profile quick] [--device auto] [--lang en,ar]
bnpaper execute CHAPTER --lang ar -p name value ...
bnpaper i18n status | ok CHAPTER:N
bnpaper freeze --profile paper --commit C   keep that build's verdicts for the other profile's ledger
bnpaper bench [--device cpu] [--repeats 25] [--train | --sync]
bnpaper lock [--check]
bnpaper run mlp|convnet|inception [--set key=value ...] [--seeds 10] [--compare key=a,b]
bnpaper pdf [--build-dir _build]
bnpaper screenshots [--build-dir _build]   the pages a reviewer checks first, as PNGs
bnpaper release [--build-dir _build] [--out _build/release] | --verify ARCHIVE
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bnpaper.errors import BnpaperError, ConfigError


def _build_dir(path: Path, must_exist: bool = False) -> Path:
    """A build folder: refused before any work when it is a file, or (for pdf and release) missing."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--build-dir {path} is a file, expected a folder: name a folder (default _build)")
    if must_exist and not path.is_dir():
        raise ConfigError(
            f"--build-dir {path} does not exist: run `make book` first, or name the build folder"
        )
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bnpaper", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("bench", help="time BN forward+backward against torch's native batch_norm")
    b.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    b.add_argument("--repeats", type=int, default=25, help="interleaved timed repeats (>= 20)")
    b.add_argument("--out", type=Path, default=Path("_build/bench"), help="folder for the JSON table")
    b.add_argument("--record", action="store_true", help="also record the run in book/bench/ for chapter 01")
    b.add_argument(
        "--train", action="store_true", help="training throughput: single vs batched runs vs cores"
    )
    b.add_argument(
        "--sync", action="store_true", help="synchronized BN on 2 gloo processes vs one process (CPU)"
    )

    bk = sub.add_parser("book", help="execute every chapter and build the English and Arabic editions")
    bk.add_argument("--profile", default="quick", help="smoke, quick or paper (default quick)")
    bk.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    bk.add_argument("--lang", default="en,ar", help="comma-separated editions (default en,ar)")
    bk.add_argument("--build-dir", type=Path, default=Path("_build"), help="output folder (default _build)")
    bk.add_argument(
        "--data-dir", default="", help="folder with the four MNIST IDX files (default: embedded 5k digits)"
    )

    tu = sub.add_parser(
        "tune",
        help="tune every arm (validation data, tuning seeds) and freeze the choices with their "
        "provenance in bnpaper/data/tuned.json (--profile paper: tuned-paper.json)",
    )
    tu.add_argument("--only", nargs="*", default=None, metavar="KEY", help="tune only these (see --list)")
    tu.add_argument("--list", action="store_true", help="list the tunings the experiments declare")
    tu.add_argument(
        "--profile",
        default="quick",
        choices=["quick", "paper"],
        help="whose settings to tune at (default quick)",
    )
    tu.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    tu.add_argument("--data-dir", default="", help="MNIST IDX folder (default: embedded 5k digits)")

    i18 = sub.add_parser(
        "i18n", help="Arabic twins whose English changed since they were translated or reviewed"
    )
    i18_sub = i18.add_subparsers(dest="action", required=True)
    st = i18_sub.add_parser("status", help="list the stale Arabic twins, per chapter and experiment catalog")
    st.add_argument("chapters", nargs="*", help="chapter or catalog names (default: all)")
    ok = i18_sub.add_parser(
        "ok", help="record twins as reviewed: CHAPTER:N or CATALOG:N (see status), or the name alone for all"
    )
    ok.add_argument("cells", nargs="+", metavar="CELL")

    lk = sub.add_parser(
        "lock", help="lock every claim's protocol by digest before its confirmatory run (protocols.lock)"
    )
    lk.add_argument("--check", action="store_true", help="exit 1 if a protocol differs from its lock")

    fz = sub.add_parser(
        "freeze",
        help="keep a profile's confirmatory verdicts (data/confirmatory.json) for the other's ledger",
    )
    fz.add_argument("--profile", default="paper", help="the profile whose build to keep (default paper)")
    fz.add_argument(
        "--ledger", type=Path, default=None, help="that build's ledger folder (default _build/ledger)"
    )
    fz.add_argument("--commit", required=True, help="the commit that build was made from")
    fz.add_argument("--date", default=None, help="the day of that build, YYYY-MM-DD (default today)")

    rn = sub.add_parser("run", help="train one of the book's networks over N seeds, with 95%% intervals")
    rn.add_argument("experiment", help="mlp (the Sec. 4.1 / Figure 1 network with BN), convnet or inception")
    rn.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="change a setting (TrainConfig)"
    )
    rn.add_argument("--seeds", type=int, default=10, help="evaluation seeds 0..N-1 (default 10)")
    rn.add_argument("--compare", default=None, metavar="KEY=A,B", help="two arms, paired by seed")
    rn.add_argument("--out", type=Path, default=None, help="JSON file (default _build/runs/...)")

    pd = sub.add_parser(
        "pdf", help="print each edition of the last book build to build_dir/pdf/bnpaper-<lang>.pdf"
    )
    pd.add_argument("--build-dir", type=Path, default=Path("_build"), help="the book build (default _build)")
    pd.add_argument("--lang", default="en,ar", help="comma-separated editions (default en,ar)")

    sc = sub.add_parser(
        "screenshots", help="the ledger, chapter 01's derivation and chapter 07, both editions, as PNGs"
    )
    sc.add_argument("--build-dir", type=Path, default=Path("_build"), help="the book build (default _build)")

    rl = sub.add_parser("release", help="pack the book build into a verifiable, reproducible .tar.gz")
    rl.add_argument("--build-dir", type=Path, default=Path("_build"), help="the book build (default _build)")
    rl.add_argument(
        "--out", type=Path, default=None, help="folder for the archive (default BUILD_DIR/release)"
    )
    rl.add_argument(
        "--verify", type=Path, default=None, metavar="ARCHIVE", help="check an archive's SHA256SUMS"
    )

    ex = sub.add_parser("execute", help="re-execute one chapter with parameters into an executed .ipynb")
    ex.add_argument("chapter", help="chapter name (see `bnpaper execute --list`)", nargs="?")
    ex.add_argument("--list", action="store_true", help="list the chapters and their parameters")
    ex.add_argument("--lang", default="en", help="en or ar (default en)")
    ex.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter of the chapter's parameters cell (repeatable)",
    )
    ex.add_argument("-o", "--output", type=Path, default=None, help="executed notebook path")
    ex.add_argument("--build-dir", type=Path, default=Path("_build"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "bench":
            from bnpaper import bench

            if args.train:
                bench.main_train(args.device, args.out)
            elif args.sync:
                bench.main_sync(args.out, args.repeats)
            else:
                config = bench.BenchConfig(device=args.device, repeats=args.repeats)
                bench.main(config, args.out, record=args.record)
        elif args.command == "book":
            from bnpaper.book import pipeline

            pipeline.build_book(
                profile=args.profile,
                device=args.device,
                langs=args.lang,
                build_dir=_build_dir(args.build_dir),
                data_dir=args.data_dir,
            )
        elif args.command == "tune":
            from bnpaper import tuning

            reg = tuning.registry()
            if args.list:
                for key, t in reg.items():
                    print(f"{key}: {t.field} over {', '.join(f'{v:g}' for v in t.grid)}")
                return 0
            frozen = tuning.freeze(
                args.only, data_dir=args.data_dir, device=args.device, profile=args.profile
            )
            for key in args.only or reg:
                e = frozen[key]
                edge = "  (at the grid's edge: widen the grid)" if e["at_grid_edge"] else ""
                score = e["scores"][repr(e["value"])]
                print(f"{key}: {e['field']} = {e['value']:g}, validation {score:.4f}{edge}")
            print(f"frozen in {tuning.frozen_path(args.profile)}")
        elif args.command == "i18n":
            from bnpaper import i18n

            if args.action == "status":
                stale = i18n.status(args.chapters)
                for name, ts in stale.items():
                    print(f"{name}: {len(ts)} stale" + "".join(f"\n  {t.describe()}" for t in ts))
                total = sum(map(len, stale.values()))
                hint = ": revise the Arabic, then `bnpaper i18n ok CELL`" if total else ""
                print(f"{total} stale twin(s){hint}")
                return 1 if total else 0
            for t in i18n.mark_reviewed(args.cells):
                print(f"recorded {t.cell} ({t.kind}) as reviewed against English {t.current}")
        elif args.command == "lock":
            from bnpaper import ledger, prereg

            owned = ledger.owned()
            if args.check:
                diff = prereg.differences(owned, prereg.read_lock())
                for cid, why in diff.items():
                    print(f"{cid}: {why}")
                print(f"{len(diff)} protocol(s) differ from {prereg.lock_path()}")
                return 1 if diff else 0
            added = prereg.lock(owned)
            for cid in added:
                print(f"locked {cid}")
            print(f"{len(added)} protocol(s) locked in {prereg.lock_path()}; commit it before the run")
        elif args.command == "freeze":
            import datetime

            from bnpaper import ledger

            if args.profile not in ("quick", "paper"):
                raise ConfigError(f"freeze keeps a 'quick' or 'paper' build, got {args.profile!r}")
            day = args.date or datetime.date.today().isoformat()
            entry = ledger.freeze(args.profile, args.commit, day, args.ledger)
            counts = {v: sum(e["verdict"] == v for e in entry["claims"].values()) for v in ledger.VERDICTS}
            shown = ", ".join(f"{v} {n}" for v, n in counts.items() if n)
            print(f"kept {len(entry['claims'])} {args.profile!r} verdicts of {args.commit} ({shown})")
        elif args.command == "run":
            from bnpaper import sweep

            sweep.main(args.experiment, args.set, args.seeds, args.compare, args.out)
        elif args.command == "pdf":
            from bnpaper.book import pdf, pipeline

            pdf.build_pdfs(
                _build_dir(args.build_dir, must_exist=True), tuple(pipeline.parse_langs(args.lang))
            )
        elif args.command == "screenshots":
            from bnpaper.book import screenshots

            for path in screenshots.take(_build_dir(args.build_dir, must_exist=True)):
                print(f"wrote {path}")
        elif args.command == "release":
            from bnpaper.book import release

            if args.verify is not None:
                n = release.verify(args.verify)
                print(f"{args.verify}: all {n} files match SHA256SUMS")
                return 0
            build = _build_dir(args.build_dir, must_exist=True)
            path = release.write(build, args.out or build / "release")
            digest = release.sha256(path.read_bytes())
            print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB, sha256 {digest})")
        elif args.command == "execute":
            from bnpaper.book import pipeline

            if args.list or not args.chapter:
                print(pipeline.describe_chapters())
                return 0 if args.list else 2
            path = pipeline.execute_one(
                args.chapter,
                lang=args.lang,
                raw_params=args.parameter,
                output=args.output,
                build_dir=_build_dir(args.build_dir),
            )
            print(f"executed notebook: {path}")
    except BnpaperError as e:  # a user's problem: one message; anything else is a bug, with its traceback
        print(f"bnpaper {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
