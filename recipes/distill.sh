#!/usr/bin/env bash
# Wav2Small distillation, stage by stage (arXiv 2408.13920):
#   0 prepare   manifest of the audio to distil on (a folder, or MSP-Podcast splits)
#   1 label     the teacher writes arousal/dominance/valence for every crop and augmented view
#   2 train     the student learns the teacher's outputs (no human labels)
#   3 evaluate  student vs teacher on held-out clips, and vs human labels when the corpus has them
#   4 export    fp32 + int8 ONNX with parity and footprint reports
#
# Every variable below can be set from the command line: --data DIR --student wav2small-72k ...
# Each stage skips work already done (and says so); logs go to $out/logs/.
#
# examples:
#   recipes/distill.sh --data /data/MSP-PODCAST-1.11 --out exp/w2s          # the paper's setting
#   recipes/distill.sh --data my_audio/ --teacher ./dawn --stage 2 --stop-stage 4
#   recipes/distill.sh --data my_audio/ --nproc 4 --device cuda             # torchrun for label/train
#   recipes/distill.sh --data my_audio/ --prenorm running                    # a student for `wav2small stream`
set -euo pipefail

stage=0
stop_stage=4
data=                     # audio folder, or MSP-Podcast root (Audios/ + Labels/labels_consensus.csv)
splits=Train              # MSP-Podcast splits to distil on
eval_split=Test1          # MSP-Podcast split for evaluation against human labels
teacher=dawn+odyssey      # teacher spec: alias, hub id, folder, or A+B ensemble
teacher_weights=          # ensemble weights, comma-separated (default: equal)
student=wav2small         # see `wav2small students`
prenorm=                  # wav2small input normalisation: utterance (published) or running (causal: streams exactly); empty = default
crop_dur=4                # seconds per labelled crop
views=2                   # augmented views per crop (0 = clean crops only)
noise_dir=                # folder of noise recordings for the views (default: generated noise)
steps=20000               # training steps
batch_size=16
lr=2e-3
device=cpu                # cpu or cuda
nproc=1                   # processes for labelling and training (torchrun when > 1)
out=exp/distill           # everything goes here

# --name value sets variable name (dashes become underscores), Kaldi style.
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
               echo; echo "variables (defaults):"; sed -n '/^stage=0/,/^out=/p' "$0" | sed 's/^/  --/'; exit 0 ;;
    --*=*) name="${1%%=*}"; value="${1#*=}"; shift ;;
    --*) [ $# -ge 2 ] || { echo "distill.sh: $1 needs a value" >&2; exit 2; }; name="$1"; value="$2"; shift 2 ;;
    *) echo "distill.sh: unexpected argument '$1' (options are --name value)" >&2; exit 2 ;;
  esac
  name="${name#--}"; name="${name//-/_}"
  if ! declare -p "$name" >/dev/null 2>&1 || [[ "$name" =~ ^(name|value)$ ]]; then
    echo "distill.sh: unknown option --${name//_/-}" >&2; exit 2
  fi
  printf -v "$name" '%s' "$value"
done
[ -n "$data" ] || { echo "distill.sh: set --data (audio folder or MSP-Podcast root)" >&2; exit 2; }

mkdir -p "$out/logs"
launch="wav2small"
if [ "$nproc" -gt 1 ]; then launch="torchrun --standalone --nproc_per_node=$nproc --no-python wav2small"; fi
is_msp=false; [ -f "$data/Labels/labels_consensus.csv" ] && is_msp=true

# run_stage N NAME COMMAND...: runs unless done before; logs to $out/logs/stageN_NAME.log.
# (set -e does not reach into the stage functions below: they chain their commands with && / || return.)
run_stage() {
  local n=$1 name=$2; shift 2
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  local marker="$out/.done.stage$n" log="$out/logs/stage${n}_$name.log"
  if [ -f "$marker" ]; then
    echo "stage $n ($name): done already, skipping (remove $marker to redo)"; return 0
  fi
  echo "stage $n ($name): $*"
  local t0=$SECONDS
  if ! "$@" 2>&1 | tee "$log"; then
    echo "stage $n ($name) failed after $((SECONDS - t0)) s; see $log" >&2; exit 1
  fi
  echo "stage $n ($name): finished in $((SECONDS - t0)) s"
  touch "$marker"
}

run_stage 0 prepare wav2small prepare "$data" --splits "$splits" --test-split "$eval_split" --out "$out/data"

# The teacher labels the training audio (clean crops + augmented views) and the held-out test audio.
label_stage() {
  local common=(--teacher "$teacher" ${teacher_weights:+--weights "$teacher_weights"} --crop-dur "$crop_dur"
                --batch-size "$batch_size" --device "$device")
  $launch label "$out/data/train.csv" --out "$out/labels" --views "$views" ${noise_dir:+--noise-dir "$noise_dir"} "${common[@]}" &&
  $launch label "$out/data/test.csv" --out "$out/labels_test" --views 0 "${common[@]}"
}
run_stage 1 label label_stage

run_stage 2 train $launch train "$out/labels" --student "$student" --out "$out/train" \
  ${prenorm:+--student-option prenorm="$prenorm"} --steps "$steps" --batch-size "$batch_size" --lr "$lr" --device "$device"

# Student vs teacher on held-out audio the student never saw; vs human labels when the corpus has them.
evaluate_stage() {
  wav2small evaluate "$out/labels_test" --model "$out/train/best" --output-dir "$out/eval/teacher" --device "$device" || return 1
  if $is_msp; then
    wav2small evaluate "$data" --split "$eval_split" --model "$out/train/best" --model "$teacher" \
      --output-dir "$out/eval/human" --device "$device"
  fi
}
run_stage 3 evaluate evaluate_stage

run_stage 4 export wav2small export "$out/train/best" --out "$out/export" --int8 --calibration "$out/labels"

echo
echo "summary ($out):"
[ -d "$out/labels" ] && echo "  teacher labels   $out/labels"
[ -d "$out/train/best" ] && echo "  student          $out/train/best   (predict: wav2small predict FILE --model $out/train/best)"
[ -d "$out/eval/teacher" ] && echo "  vs teacher       $out/eval/teacher/report.md   plots: $out/eval/teacher/*.png"
[ -d "$out/eval/human" ] && echo "  vs human labels  $out/eval/human/report.md   plots: $out/eval/human/*.png"
[ -d "$out/export" ] && echo "  ONNX             $out/export/model.onnx, $out/export/model.int8.onnx   contract: $out/export/CONTRACT.md"
echo "  logs             $out/logs/"
