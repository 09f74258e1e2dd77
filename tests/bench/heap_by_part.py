#!/usr/bin/env python3
"""Groups a heaptrack peak-heap profile of the controller by part, as BENCHMARKS.md reports it.

    heaptrack_print -f /tmp/ht/controller.zst --flamegraph-cost-type peak -F /tmp/ht/stacks.txt
    python3 tests/bench/heap_by_part.py /tmp/ht/stacks.txt

Each stack (outermost frame first, its peak bytes last) counts under the first part whose frame
it contains, in the order below; the kube-runtime stores are split by the object type cloned
into them: allocations are grouped by the store's writer (one monomorphised
`apply_watcher_event` each), and each group is named after the type its clones are of.
"""

import collections
import re
import sys

PARTS = [
    ("/metrics text while scraped", "prometheus_client::encoding"),
    ("per-object metric series", "secret_sync_controller::metrics"),
    ("Secret cache", "secret_sync::secret_cache"),
    ("kube-runtime stores", "reflector::store::Writer"),
    ("read index", "secret_sync::index"),
    ("kube controller scheduler", "kube_runtime::scheduler"),
    ("kube controller runner", "kube_runtime::controller::runner"),
    ("HTTP", "hyper::"),
    ("Event publisher", "secret_sync::events"),
    ("statuses remembered (read-your-writes)", "secret_sync::engine::Recent"),
    ("status queue", "secret_sync::statuses"),
    ("ExternalSecrets decoded from the cache", "secret_sync::cached::CachedExternalSecret::expand"),
    ("ExternalSecrets put in cached form", "secret_sync::cached::CachedExternalSecret::new"),
]


def writer_of(stack):
    found = re.search(r"apply_watcher_event::(h[0-9a-f]{16})", stack)
    return found.group(1) if found else "?"


def type_of(stack):
    if "core::v1::secret::Secret as core::clone::Clone" in stack:
        return "Secrets"
    if "external_secret::ExternalSecret as core::clone::Clone" in stack:
        return "ExternalSecrets"
    if "CachedExternalSecret as core::clone::Clone" in stack:
        return "ExternalSecrets (cached form)"
    return None


def main(path):
    parts = collections.Counter()
    stores = collections.Counter()
    names = collections.defaultdict(collections.Counter)
    total = 0
    for line in open(path, encoding="utf-8", errors="replace"):
        stack, _, cost = line.rstrip("\n").rpartition(" ")
        try:
            cost = int(cost)
        except ValueError:
            continue
        total += cost
        stack = stack.replace("..", "::").replace("$u20$", " ")
        for name, needle in PARTS:
            if needle in stack:
                parts[name] += cost
                if name == "kube-runtime stores":
                    writer = writer_of(stack)
                    stores[writer] += cost
                    if kind := type_of(stack):
                        names[writer][kind] += cost
                break
        else:
            parts["other"] += cost
    mib = 1 << 20
    print(f"peak heap {total / mib:.1f} MiB")
    for name, cost in parts.most_common():
        print(f"  {cost / mib:6.1f} MiB  {name}")
        if name == "kube-runtime stores":
            for writer, c in stores.most_common():
                kind = names[writer].most_common(1)
                label = f"store of {kind[0][0]}" if kind else "another store"
                print(f"  {'':6}    {c / mib:6.1f} MiB  {label}")


if __name__ == "__main__":
    main(sys.argv[1])
