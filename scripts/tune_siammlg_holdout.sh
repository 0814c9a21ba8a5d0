#!/usr/bin/env bash
# One-at-a-time sweep of the SiamMLG tracker settings around the defaults, on the train-internal holdout
# (12 sequences of configs/splits/train_holdout.json; the shared val split is never used to choose), with the
# shipped weights.  The sweep ran around SiamMask's window_influence 0.4 (the default then; 0.15, its result,
# is the default now), so every row starts from 0.4 and a later --set overrides it.  Each row is one
# `gradtrack eval` (~2 min on 2 cores); then compare every row with the defaults, paired over the holdout
# sequences:
#   scripts/tune_siammlg_holdout.sh
#   for l in $(ls results/holdout | grep '^mlg_'); do gradtrack report results/holdout --compare $l mlg_default; done
# (results: docs/results/tuning/siammlg_holdout.md)
set -euo pipefail
cd "$(dirname "$0")/.."
run() { scripts/eval_holdout.sh "$1" siammlg - --set window_influence=0.4 "${@:2}"; }
run mlg_default
run mlg_boxhead --set box_source=boxhead
run mlg_wi025 --set window_influence=0.25
run mlg_wi055 --set window_influence=0.55
run mlg_lr020 --set lr=0.2
run mlg_lr045 --set lr=0.45
run mlg_pk010 --set penalty_k=0.1
run mlg_pk000 --set penalty_k=0.0
run mlg_mt020 --set mask_threshold=0.2
run mlg_mt040 --set mask_threshold=0.4
run mlg_inst287 --set instance_size=287
# second round, around the first round's best single changes (window_influence 0.25, lr 0.2, penalty_k 0.1)
run mlg_wi015 --set window_influence=0.15
run mlg_lr010 --set lr=0.1
run mlg_wi025_lr020 --set window_influence=0.25 --set lr=0.2
run mlg_wi025_lr020_pk010 --set window_influence=0.25 --set lr=0.2 --set penalty_k=0.1
# third round: window_influence further down, and with the larger search
run mlg_wi010 --set window_influence=0.1
run mlg_wi015_inst287 --set window_influence=0.15 --set instance_size=287
# the same check on siamfc_effnet (its default 0.176 = label effnet_s8; not adopted: val disagreed)
#   scripts/eval_holdout.sh effnet_s8 siamfc_effnet -
#   scripts/eval_holdout.sh effnet_s8_wi010 siamfc_effnet - --set window_influence=0.10   (also 0.05, 0.25)
