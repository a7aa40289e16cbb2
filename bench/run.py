"""The index of the benchmarks: ``python bench/run.py NAME [NAME ...]`` runs those, ``--all`` every one (over
an hour on 2 cores, `make bench`), ``--quick`` a short set that fits in CI's time (a minute or two), ``--list``
names them. Each script writes bench/results/<name>.json itself (see bench/README.md)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "precision": ["device/precision.py"],
    "embed": ["embed/speed.py"],
    "embed_cifar10": ["embed/cifar10.py"],
    "audit_duplicates": ["audit/duplicates.py"],
    "audit_duplicates_fresh": ["audit/duplicates.py", "--fresh"],
    "audit_cifar10n": ["audit/cifar10n.py"],
    "audit_multilabel": ["audit/multilabel.py"],
    "audit_properties": ["audit/properties.py"],
    "audit_outliers_real": ["audit/outliers_real.py"],
    "audit_test_labels_cifar10h": ["audit/test_labels_cifar10h.py"],
    "audit_duplicates_real": ["audit/duplicates_real.py", "score"],
    "audit_duplicates_report": ["audit/duplicates.py", "--set", "report"],
    "audit_duplicates_rules": ["audit/duplicates_real.py", "rules"],
    "audit_duplicates_real_structure": ["audit/duplicates_real.py", "score-round", "--round", "structure"],
    "audit_scale": ["audit/scale.py"],
    "train_cifar10": ["train/cifar10.py"],
    "train_eval_cifar10": ["train/eval_cifar10.py"],
    "train_variants": ["train/variants.py"],
    "train_compile": ["train/compile.py"],
    "train_cpu_choices": ["train/cpu_choices.py"],
    "train_airbench": ["train/airbench.py"],
    "train_airbench95": ["train/airbench.py", "--recipe", "cifar-airbench95", "--eval-every", "5"],
    "train_efficientnet-lite0-ft": ["train/airbench.py", "--recipe", "cifar-efficientnet-lite0-ft"],
    "train_efficientnet-lite0-ft_n5000": ["train/airbench.py", "--recipe", "cifar-efficientnet-lite0-ft",
                                          "--train-images", "5000", "--no-baseline"],
    "train_airbench_n5000": ["train/airbench.py", "--train-images", "5000", "--no-baseline"],
    "train_finetune_vs_scratch_n5000": ["train/finetune_vs_scratch.py", "--suffix", "_n5000"],
    "train_finetune_size_validation": ["train/finetune_size.py"],
    "train_eval_size_validation": ["train/eval_size.py"],
    "train_efficientnet-lite0-ft128": ["train/airbench.py", "--recipe", "cifar-efficientnet-lite0-ft128"],
    "train_time_to_accuracy_plot": ["train/plot_time_to_accuracy.py"],
    "robustness_cifar10": ["evaluate/robustness_cifar10.py"],
    "curate_cifar10n_worse": ["curate/cifar10n.py", "--labels", "worse"],
    "curate_cifar10n_clean": ["curate/cifar10n.py", "--labels", "clean", "--keep", "0.3,0.5"],
    "curate_cifar10n_worse_resnet8": ["curate/cifar10n.py", "--labels", "worse", "--recipe", "cifar-resnet8-fast"],
    "curate_cifar10n_clean_resnet8": ["curate/cifar10n.py", "--labels", "clean", "--recipe", "cifar-resnet8-fast",
                                      "--keep", "0.3,0.5", "--strategies", "random,rs2,prototypes,dbp,semdedup+dbp,"
                                      "el2n-probe,craig-probe,filter,clean"],
    "curate_cifar10n_worse_variants": ["curate/cifar10n.py", "--labels", "worse", "--strategies", "filter,el2n-probe",
                                       "--no-full", "--options", "filter:mode=agree;el2n-probe:offset=0.4",
                                       "--tag", "_variants"],
    "curate_scale": ["curate/scale.py"],
    "curate_partitioned": ["curate/partitioned.py"],
    "review_load": ["review/load.py"],
    "scale": ["scale/partition.py"],
    "label_issues_cnn": ["audit/label_issues_cnn.py"],
    "curate_cifar10n_iterations": ["curate/cifar10n.py", "--labels", "worse", "--recipe", "cifar-resnet8-fast",
                                   "--epochs", "5", "--budget", "iterations", "--strategies", "random,rs2",
                                   "--seeds", "2", "--tag", "_iterations"],
    "distill": ["distill/distill.py"],
    "distill_protocols": ["distill/protocols.py"],
    "curate_dbp_ssp_probe": ["curate/cifar10n.py", "--labels", "clean", "--keep", "0.3,0.5", "--seeds", "3",
                             "--strategies", "random,dbp,ssp", "--no-full", "--tag", "_dbp_ssp"],
    "curate_dbp_ssp_resnet8": ["curate/cifar10n.py", "--labels", "clean", "--recipe", "cifar-resnet8-fast",
                               "--keep", "0.3,0.5", "--seeds", "3", "--strategies", "random,dbp,ssp", "--no-full",
                               "--tag", "_dbp_ssp"],
    "curate_rs2_iterations": ["curate/cifar10n.py", "--labels", "clean", "--recipe", "cifar-resnet8-fast",
                              "--budget", "iterations", "--keep", "0.3", "--seeds", "3", "--strategies",
                              "random,rs2", "--no-full", "--tag", "_rs2_iterations"],
    "curate_rs2_augment_iterations": ["curate/cifar10n.py", "--labels", "clean", "--recipe", "cifar-resnet8-fast",
                                      "--budget", "iterations", "--keep", "0.3", "--seeds", "3", "--strategies",
                                      "random,rs2,random-augment,craig-augment-pixel",
                                      "--tag", "_rs2_augment_iterations"],
    "curate_pixel_scores_iterations": ["curate/cifar10n.py", "--labels", "clean", "--recipe", "cifar-resnet8-fast",
                                       "--budget", "iterations", "--keep", "0.3", "--seeds", "3", "--strategies",
                                       "random,el2n,forgetting,craig-pixel", "--no-full",
                                       "--tag", "_pixel_scores_iterations"],
    "scale_knn_faiss": ["scale/knn_faiss.py"],
    "pretrain_mnist": ["pretrain/selfsup.py", "--dataset", "mnist", "--epochs", "24", "--crop-min", "0.5", "--no-flip",
                       "--temperature", "0.2"],
    "pretrain_finetune": ["pretrain/finetune.py"],
    "explain_instructions": ["explain/instructions.py"],
    "security_badnets": ["security/badnets.py"],
    "security_blend": ["security/badnets.py", "--attack", "blend"],
}
QUICK = {"precision": ["device/precision.py"],
         "train_airbench_quick": ["train/airbench.py", "--quick"],
         "train_cpu_choices_quick": ["train/cpu_choices.py", "--quick"],
         "curate_partitioned_quick": ["curate/partitioned.py", "--sizes", "200000", "--limit", "1000000",
                                      "--out", "curate_partitioned_quick"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="benchmarks to run (see --list)")
    ap.add_argument("--all", action="store_true", help="every benchmark, in order")
    ap.add_argument("--quick", action="store_true", help="the short set")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args()
    if args.list:
        for name, argv in {**BENCHES, **QUICK}.items():
            print(f"{name:28s} {' '.join(argv)}{'  (quick)' if name in QUICK else ''}")
        return 0
    chosen = dict(QUICK) if args.quick else dict(BENCHES) if args.all else {}
    for name in args.names:
        if name not in BENCHES and name not in QUICK:
            print(f"error: no benchmark {name!r}; see --list", file=sys.stderr)
            return 2
        chosen[name] = {**BENCHES, **QUICK}[name]
    if not chosen:
        ap.print_usage(sys.stderr)
        return 2
    for name, argv in chosen.items():
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=HERE.parent).returncode:
            print(f"error: benchmark {name} failed", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
