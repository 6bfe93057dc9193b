#!/usr/bin/env bash
# Seed corpora for `make fuzz` (tests/fuzz/), one directory per target under
# $1, from the test fixtures:
#   safetensors  the parity reference files and every checkpoint's tensors
#   parity       the 18 parity reference files
#   peft         every checkpoint directory as config SEP adapter [SEP base]
#   idx          images SEP labels, in the layout tests/test_datasets.c writes
#                (there are no IDX fixture files: the tests make theirs),
#                raw and gzip
#   digits       a 3-row CSV like tests/test_datasets.c's, and the first rows
#                of sklearn's digits.csv.gz when python3-sklearn is installed
#   results      the heads of the committed results/*/*.csv tables
set -euo pipefail
out=${1:?usage: seeds.sh OUTDIR}
sep=$'\n--RLFUZZ--\n'
rm -rf "$out"
mkdir -p "$out"/{safetensors,parity,peft,idx,digits,results}
cp tests/fixtures/peft/*.safetensors tests/fixtures/peft_extra/*.safetensors "$out/parity/"
cp tests/fixtures/peft/*.safetensors "$out/safetensors/"
for d in tests/fixtures/peft/checkpoints/*_ckpt tests/fixtures/peft/checkpoints_extra/*_ckpt; do
    n=$(basename "$d")
    cp "$d/adapter_model.safetensors" "$out/safetensors/$n.adapter"
    [ -f "$d/base_model.safetensors" ] && cp "$d/base_model.safetensors" "$out/safetensors/$n.base"
    {
        cat "$d/adapter_config.json"
        printf '%s' "$sep"
        cat "$d/adapter_model.safetensors"
        if [ -f "$d/base_model.safetensors" ]; then
            printf '%s' "$sep"
            cat "$d/base_model.safetensors"
        fi
    } > "$out/peft/$n"
done
# two 28x28 images and their labels
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{ printf '\000\000\010\003\000\000\000\002\000\000\000\034\000\000\000\034'; head -c 1568 /dev/zero | tr '\0' '\177'; } > "$tmp/img"
printf '\000\000\010\001\000\000\000\002\001\011' > "$tmp/lab"
{ cat "$tmp/img"; printf '%s' "$sep"; cat "$tmp/lab"; } > "$out/idx/raw"
{ gzip -c "$tmp/img"; printf '%s' "$sep"; gzip -c "$tmp/lab"; } > "$out/idx/gzip"
for i in 0 1 2; do
    row=""
    for j in $(seq 0 63); do row+="$(( (i * 5 + j) % 17 )),"; done
    echo "$row$i"
done > "$tmp/digits.csv"
gzip -c "$tmp/digits.csv" > "$out/digits/three_rows.csv.gz"
cp "$tmp/digits.csv" "$out/digits/three_rows.csv"
sk=/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz
if [ -f "$sk" ]; then
    gzip -dc "$sk" | head -n 20 | gzip -c > "$out/digits/sklearn_head.csv.gz" || true
fi
for f in results/*/*.csv; do
    [ -f "$f" ] || continue
    head -n 30 "$f" > "$out/results/$(echo "$f" | tr '/' '_')"
done
echo "seeds: $(find "$out" -type f | wc -l) files in $out"
