#!/usr/bin/env bash
# Wav2Small distillation, stage by stage (arXiv 2408.13920):
#   0 prepare   manifest of the audio to distil on (a folder, or MSP-Podcast splits)
#   1 label     the teacher writes arousal/dominance/valence for every crop and augmented view
#   2 train     the student learns the teacher's outputs (no human labels)
#   3 evaluate  student vs teacher on held-out clips, and vs human labels when the corpus has them
#   4 export    fp32 + int8 ONNX with parity and footprint reports
#
# Every variable below can be set from the command line: --data DIR --student wav2small-72k ...
# Any option of a stage's command passes through its *_opts variable (see `wav2small COMMAND --help`):
#   --train-opts "--ccc-weight 1 --ema-decay 0.999 --valid-every 200"   (values without spaces)
# Distillation methods (README: "Distillation methods"; `wav2small label --help`, `wav2small train --help`):
#   --label-opts "--mixup-prob 0.5 --reverb-prob 0.3 --rir-dir rirs/"   MixUp and reverberated views
#   --label-opts "--gain-db 0,0"                                          gain-free views (Odyssey hears the level)
#   --train-opts "--member-weight dawn=1 --member-weight odyssey=0.5"     one loss term per teacher
#   --train-opts "--clean-target-weight 0.5"                              view and clean-crop targets (tolerant/tough)
# Each stage records its settings (the commands it runs, and the settings of the stage before it)
# and skips itself when it is done with the same settings. A done stage whose settings changed is
# refused with the difference named: add --redo true to redo the stages from --stage on (their
# outputs are removed first), or pick another --out. Logs go to $out/logs/.
#
# examples:
#   recipes/distill.sh --data /data/MSP-PODCAST-1.11 --out exp/w2s          # the paper's setting
#   recipes/distill.sh --data my_audio/ --teacher ./dawn --stage 2 --stop-stage 4
#   recipes/distill.sh --data my_audio/ --stage 2 --steps 50000 --redo true    # retrain with new settings
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
redo=false                # true: redo stages --stage..--stop-stage even if done (their outputs are removed first)
prepare_opts=             # more options of `wav2small prepare`, e.g. "--test-fraction 0.2"
label_opts=               # more options of `wav2small label`, e.g. "--workers 4 --shard-size 512"
train_opts=               # more options of `wav2small train`, e.g. "--ccc-weight 1 --ema-decay 0.999"
evaluate_opts=            # more options of `wav2small evaluate`, e.g. "--bootstrap 200"
export_opts=              # more options of `wav2small export`, e.g. "--activations all --per-channel"

# --name value sets variable name (dashes become underscores), Kaldi style.
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
               echo; echo "variables (defaults):"; sed -n '/^stage=0/,/^export_opts=/p' "$0" | sed -E ':a; s/^([a-z-]*)_/\1-/; ta; s/^/  --/'; exit 0 ;;
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

case "$redo" in true|false) ;; *) echo "distill.sh: --redo is true or false, got '$redo'" >&2; exit 2 ;; esac

mkdir -p "$out/logs"
export PYTHONUNBUFFERED=1  # the logs keep what was printed in the order it was printed
launch=(wav2small)
if [ "$nproc" -gt 1 ]; then launch=(torchrun --standalone "--nproc_per_node=$nproc" --no-python wav2small); fi
is_msp=false; [ -f "$data/Labels/labels_consensus.csv" ] && is_msp=true
opts() { local words; read -ra words <<< "$1"; [ ${#words[@]} -eq 0 ] || printf '%s\n' "${words[@]}"; }  # one word a line
mapfile -t prepare_extra < <(opts "$prepare_opts"); mapfile -t label_extra < <(opts "$label_opts")
mapfile -t train_extra < <(opts "$train_opts"); mapfile -t evaluate_extra < <(opts "$evaluate_opts")
mapfile -t export_extra < <(opts "$export_opts")

# Stage commands run through `step`. While the recipe reads a stage's settings (settings=true) it
# prints each command, one word per line and an empty line after it, instead of running it: a
# stage's settings are exactly the commands it runs (the launcher aside: --nproc changes how, not what).
settings=false
step() { if $settings; then printf '%s\n' "$@" ''; else "$@"; fi; }
run() { if $settings; then step wav2small "$@"; else step "${launch[@]}" "$@"; fi; }  # label and train: torchrun when --nproc > 1

# "--name value" on one line, so that a difference reads as "--steps 600" against "--steps 700"
pairs() { awk '/^--./ { if (p != "") print p; p = $0; next }
                /^$/ { if (p != "") print p; p = ""; next }
                { if (p != "") { print p " " $0; p = "" } else print } END { if (p != "") print p }'; }
commands() { awk '/^$/ { print "  " line; line = ""; next } { line = line (line == "" ? "" : " ") $0 }'; }  # one a line

# run_stage N NAME "OUTPUTS" FUNCTION: runs stage N (when in --stage..--stop-stage) unless it is done
# with the same settings and its outputs exist; logs to $out/logs/stageN_NAME.log. Its settings
# (FUNCTION's commands and a checksum of stage N-1's settings) are recorded in $out/.stageN when
# it starts, and $out/.done.stageN marks it finished. Settings that differ from the recorded ones
# stop the recipe with the difference named, unless --redo true (outputs removed, stage redone):
# a stage's outputs can be hours of labelling or training, too costly to replace on a typo.
# (set -e does not reach into the stage functions below: they chain their commands with && / || return.)
run_stage() {
  local n=$1 name=$2 fn=$4 outputs
  read -ra outputs <<< "$3"
  if [ "$n" -lt "$stage" ] || [ "$n" -gt "$stop_stage" ]; then return 0; fi
  local record="$out/.stage$n" marker="$out/.done.stage$n" log="$out/logs/stage${n}_$name.log" now before=""
  now="$(settings=true; $fn; if [ -f "$out/.stage$((n - 1))" ]; then echo "input: the outputs of stage $((n - 1)) as run with settings #$(cksum < "$out/.stage$((n - 1))" | cut -d' ' -f1)"; fi)"
  if $redo; then
    echo "stage $n ($name): --redo true: removing ${outputs[*]}"
    rm -rf "${outputs[@]}" "$marker" "$record"
  fi
  [ -f "$record" ] && before="$(cat "$record")"
  if [ -n "$before" ] && [ "$before" != "$now" ]; then
    {
      echo "stage $n ($name) was run in $out with other settings:"
      comm -23 <(pairs <<< "$before" | sort -u) <(pairs <<< "$now" | sort -u) | sed 's/^/  then: /'
      comm -13 <(pairs <<< "$before" | sort -u) <(pairs <<< "$now" | sort -u) | sed 's/^/  now:  /'
      echo "Its outputs (${outputs[*]}) would be replaced: to redo it and the stages after it, add"
      echo "  --stage $n --redo true"
      echo "to the command (or choose another --out)."
    } >&2
    exit 1
  fi
  local missing=false o
  for o in "${outputs[@]}"; do [ -e "$o" ] || missing=true; done
  if [ -f "$marker" ] && ! $missing; then
    echo "stage $n ($name): done already with the same settings, skipping (--stage $n --redo true redoes it)"; return 0
  fi
  printf '%s\n' "$now" > "$record"
  echo "stage $n ($name):"; commands <<< "$now"
  local t0=$SECONDS
  if ! $fn 2>&1 | tee "$log"; then
    echo "stage $n ($name) failed after $((SECONDS - t0)) s; see $log" >&2; exit 1
  fi
  echo "stage $n ($name): finished in $((SECONDS - t0)) s"
  touch "$marker"
}

# The student the later stages use: best/ (highest validation CCC) when training validated, else
# last/ (--train-opts "--valid-fraction 0" holds out nothing, so no best/ is written).
student_dir() { if [ -d "$out/train/best" ]; then echo "$out/train/best"; else echo "$out/train/last"; fi; }

prepare_stage() {
  step wav2small prepare "$data" --splits "$splits" --test-split "$eval_split" --out "$out/data" "${prepare_extra[@]}"
}
run_stage 0 prepare "$out/data" prepare_stage

# The teacher labels the training audio (clean crops + augmented views) and the held-out test audio.
label_stage() {
  local common=(--teacher "$teacher" ${teacher_weights:+--weights "$teacher_weights"} --crop-dur "$crop_dur"
                --batch-size "$batch_size" --device "$device" "${label_extra[@]}")
  run label "$out/data/train.csv" --out "$out/labels" --views "$views" ${noise_dir:+--noise-dir "$noise_dir"} "${common[@]}" &&
  run label "$out/data/test.csv" --out "$out/labels_test" --views 0 "${common[@]}"
}
run_stage 1 label "$out/labels $out/labels_test" label_stage

train_stage() {
  run train "$out/labels" --student "$student" --out "$out/train" ${prenorm:+--student-option prenorm="$prenorm"} \
    --steps "$steps" --batch-size "$batch_size" --lr "$lr" --device "$device" "${train_extra[@]}"
}
run_stage 2 train "$out/train" train_stage

# Student vs teacher on held-out audio the student never saw; vs human labels when the corpus has them.
evaluate_stage() {
  step wav2small evaluate "$out/labels_test" --model "$(student_dir)" --output-dir "$out/eval/teacher" --device "$device" \
    "${evaluate_extra[@]}" || return 1
  if $is_msp; then
    step wav2small evaluate "$data" --split "$eval_split" --model "$(student_dir)" --model "$teacher" \
      --output-dir "$out/eval/human" --device "$device" "${evaluate_extra[@]}"
  fi
}
run_stage 3 evaluate "$out/eval" evaluate_stage

export_stage() {
  step wav2small export "$(student_dir)" --out "$out/export" --int8 --calibration "$out/labels" "${export_extra[@]}"
}
run_stage 4 export "$out/export" export_stage

echo
echo "summary ($out):"
[ -d "$out/labels" ] && echo "  teacher labels   $out/labels"
if [ -d "$out/train/best" ]; then
  echo "  student          $out/train/best (highest validation CCC; predict: wav2small predict FILE --model $out/train/best)"
elif [ -d "$out/train/last" ]; then
  echo "  student          $out/train/last (no validation held out, so no best/; predict: wav2small predict FILE --model $out/train/last)"
fi
[ -d "$out/eval/teacher" ] && echo "  vs teacher       $out/eval/teacher/report.md   plots: $out/eval/teacher/*.png"
if [ -d "$out/eval/human" ]; then  # a corpus.json (the demo corpus) says what its ratings are
  ratings=$(sed -n 's/.*"reference": *"\([^"]*\)".*/\1/p' "$data/corpus.json" 2>/dev/null || true)
  printf '  vs %-13s %s\n' "${ratings:-human labels}" "$out/eval/human/report.md   plots: $out/eval/human/*.png"
fi
[ -d "$out/export" ] && echo "  ONNX             $out/export/model.onnx, $out/export/model.int8.onnx   contract: $out/export/CONTRACT.md"
echo "  logs             $out/logs/"
