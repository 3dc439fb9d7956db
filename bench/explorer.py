"""How long the explorer takes to show a new backfill position, and a revisited one.

Setting a widget's ``value`` runs the explorer's refresh synchronously, so the time of the
assignment is the time until every panel holds its final content (what the kernel sends; the
browser's drawing of it is not included). For each method and order of the notebook's
explorer: the move to the method/order, then slider moves to positions not shown before
(first visits), then the same positions again (revisits). Goal (issue 20): a new position
final in <= 0.5 s on the 2-core machine. Last line: ``ratio <median first visit / 0.5 s>``.

    python bench/explorer.py                      # digits, the notebook's methods
    python bench/explorer.py --dataset imagefolder:../shared/datasets/cifar10 --cache DIR
"""

import statistics
import time

from _common import experiment_parser

from backfill_lib import BackfillExplorer, Experiment, default_config

METHODS = ("new/old", "drm", "bct", "rt", "rt+mc")  # notebook 07's
POSITIONS = (0.05, 0.3, 0.45, 0.7, 0.95)


def timed(assign) -> float:
    start = time.perf_counter()
    assign()
    return time.perf_counter() - start


def main() -> None:
    parser = experiment_parser(__doc__.splitlines()[0], cache_help="cache with the trained models")
    args = parser.parse_args()
    config = default_config(
        args.dataset, methods=METHODS, data_root=args.data_root, cache_dir=args.cache
    )
    experiment = Experiment(config, args.data_root, cache_dir=args.cache)
    for order in experiment.config.orders:  # the curves are cached; load them before timing
        experiment.results(order)
    start = time.perf_counter()
    explorer = BackfillExplorer(experiment)
    build = time.perf_counter() - start
    switches, first, again = [], [], []
    for order in experiment.config.orders:
        for method in explorer.methods:
            switches.append(timed(lambda o=order: setattr(explorer.order, "value", o)))
            switches.append(timed(lambda m=method: setattr(explorer.method, "value", m)))
            for t in POSITIONS:
                first.append(timed(lambda t=t: setattr(explorer.fraction, "value", t)))
            for t in POSITIONS:
                again.append(timed(lambda t=t: setattr(explorer.fraction, "value", t)))

    def summary(times: list[float]) -> str:
        return f"median {statistics.median(times):.3f} s, max {max(times):.3f} s (n = {len(times)})"

    print(f"{args.dataset}: {len(explorer.labels)} gallery items, methods {', '.join(METHODS)}")
    print(f"build the explorer:            {build:.2f} s")
    print(f"switch method or order:        {summary(switches)}")
    print(f"slider, a new position:        {summary(first)}")
    print(f"slider, a position shown before: {summary(again)}")
    print(f"ratio {statistics.median(first) / 0.5:.3f}")


if __name__ == "__main__":
    main()
