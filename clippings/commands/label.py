"""`clippings label`: label pairs in the browser (docs/label.md); `--export` writes the answered groups."""

from __future__ import annotations

import argparse

from clippings.commands.embed import add_image_arguments, image_policy
from clippings.params import MINE_VAL_FRACTION, Interval, validate_params

HELP = ("Label pairs of clippings in the browser (Same / Different / Unsure), the pairs nearest the cut first; "
        "answers go to DIR/answers.jsonl at once. With --export, write the answered groups as train/val.")

CONSTRAINTS = {
    "port": Interval(int, 0, 65535),
    "seed": Interval(int, 0, None),
    "val_fraction": Interval(float, 0.0, 1.0, open_high=True),
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--links", required=True, help="links folder written by 'clippings link'")
    parser.add_argument("--archive", required=True, help="the archive the links were built from")
    parser.add_argument("--out", required=True,
                        help="local label folder: answers.jsonl (append-only), label.json; a restart continues")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765; 0: any free)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only); anything else "
                             "lets other machines reach the page (they still need the token)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random pairs (default: 0)")
    parser.add_argument("--export", action="store_true",
                        help="do not serve: write the answered groups to DIR/groups/{train,val} and exit")
    parser.add_argument("--val-fraction", type=float, default=MINE_VAL_FRACTION,
                        help=f"with --export: share of the groups put in val (default: {MINE_VAL_FRACTION})")
    add_image_arguments(parser)


def run(args: argparse.Namespace) -> int:
    validate_params("label", vars(args), CONSTRAINTS)
    from clippings.errors import BadInput
    from clippings.logs import finish, setup_logging
    from clippings.storage import is_remote, join

    if is_remote(args.out):
        raise BadInput(f"The 'out' parameter of label must be a local folder (answers are appended and synced "
                       f"to disk one by one). Got {args.out!r} instead.")
    images = image_policy(args)
    if args.export:
        from clippings.label.answers import read_answers
        from clippings.label.export import export_groups

        out = join(args.out, "groups")
        summary = export_groups(read_answers(args.out), args.archive, out, args.val_fraction, args.seed, images)
        finish(f"{summary['clippings']} clippings in {summary['groups']} groups "
               f"({summary['reprint_groups']} with reprints; {summary['train_groups']} train, "
               f"{summary['val_groups']} val), {len(summary['conflicts'])} conflicts", out)
        return 0
    from clippings.label.server import LabelSession, serve

    session = LabelSession(args.links, args.archive, args.out, seed=args.seed, images=images)
    log = setup_logging()
    before = len(session.log.answers)

    def announce(url: str) -> None:
        if args.host not in LOOPBACK:
            log.warning("label: WARNING: listening on %s, not only on this machine: anyone who can reach port %s "
                        "and learns the token can see the archive's images and captions and change the answers",
                        args.host, url.rsplit(":", 1)[1].split("/")[0])
        log.info("label: %d answers so far; open %s (Ctrl-C stops)", before, url)

    serve(session, args.host, args.port, announce)
    finish(f"{len(session.log.answers)} answers ({len(session.log.answers) - before} new)")
    return 0
