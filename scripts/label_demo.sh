#!/usr/bin/env bash
# The annotator's workflow of docs/label.md, end to end on the built-in synthetic data:
# train the segmentation, bbox and binary models, lay out the MONAI Label app, start the server on 127.0.0.1,
# infer, save a label, ask the disagreement strategy for the next image, price the labels, fine-tune, stop.
#   bash scripts/label_demo.sh [OUT_DIR (default runs/label_demo)] [PORT (default 8000)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(mkdir -p "${1:-$root/runs/label_demo}" && cd "${1:-$root/runs/label_demo}" && pwd)"
port="${2:-8000}"
bash "$root/scripts/install.sh" --label
py="$root/.venv-label/bin/python"
cd "$root"

# the configs a level merges, in order (spatialspec.registry), as the list literal `monai.bundle run --config_file`
# reads (MONAI 1.6.1 refuses the comma-joined chain `spatialspec bundle configs` prints: it checks the whole string is
# one file), and the metadata.json of its bundle
configs() {
  "$py" -c "import sys; from spatialspec.registry import config_files
print([str(f) for f in config_files(sys.argv[1])])" "$1"
}
meta() { "$root/.venv-label/bin/spatialspec" bundle configs "$1" --meta; }

echo "== 1. train the three served levels (seg, bbox, classifier) on the synthetic data (50 epochs each)"
for pair in segmentation:seg bbox_segmentation:bbox binary_classification:classifier; do
  bundle="${pair%%:*}" name="${pair#*:}"
  if [ ! -f "$out/train/$bundle/models/model.pt" ]; then
    "$py" -m monai.bundle run --config_file "$(configs "$name")" --meta_file "$(meta "$name")" \
      --output_dir "$out/train/$bundle" > "$out/train_$bundle.log" 2>&1
  fi
  echo "   $name ($bundle): $out/train/$bundle/models/model.pt"
done

echo "== 2. studies: 50 test images of the synthetic data as NIfTI (exact float intensities)"
if [ ! -d "$out/studies" ]; then
  "$root/.venv-label/bin/spatialspec" data synthetic --out "$out/synthetic" --format nifti > /dev/null
  mkdir -p "$out/studies"
  for i in $(seq -f "%05g" 0 49); do cp "$out/synthetic/test/test_${i}_image.nii.gz" "$out/studies/"; done
fi

echo "== 3. lay out the app and start the server"
"$root/.venv-label/bin/spatialspec" label-app --out "$out/app" --force \
  --checkpoint "segmentation=$out/train/segmentation/models/model.pt" \
  --checkpoint "bbox=$out/train/bbox_segmentation/models/model.pt" \
  --checkpoint "binary=$out/train/binary_classification/models/model.pt"
export MONAI_LABEL_SESSION_PATH="$out/sessions"
PATH="$root/.venv-label/bin:$PATH" monailabel start_server --app "$out/app" --studies "$out/studies" \
  --host 127.0.0.1 --port "$port" --conf models segmentation,bbox,binary > "$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
url="http://127.0.0.1:$port"
for _ in $(seq 1 120); do curl -sf "$url/info/" > "$out/info.json" && break; sleep 1; done
"$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print('   models', list(d['models']), '| strategies',
list(d['strategies']), '| scoring', list(d['scoring']), '| images', d['datastore']['total'])" "$out/info.json"

show() { "$py" -c "import json,sys; d=json.load(sys.stdin); [d.pop(k, None) for k in ('latencies', 'centroids',
'label_names', 'ranking', 'boxes')]; print('  ', json.dumps(d))"; }
echo "== 4. infer on test_00000_image (y=1, s=1) with each model"
for model in segmentation bbox binary; do
  printf "   %s:" "$model"
  curl -sf -X POST "$url/infer/$model?image=test_00000_image&output=json" | show
done

echo "== 5. save the corrected mask of test_00000_image as its final label"
curl -sf -X PUT "$url/datastore/label?image=test_00000_image&tag=final" \
  -F "label=@$out/synthetic/test/test_00000_mask.nii.gz" > /dev/null
echo "   saved: $(ls "$out/studies/labels/final")"

echo "== 6. next image: where binary and segmentation disagree most"
curl -sf -X POST "$url/activelearning/disagreement" -H "Content-Type: application/json" -d '{"top": 5}' \
  > "$out/next.json"
"$py" - "$out/next.json" "$out/synthetic/datalist.json" <<'PY'
import json, sys
chosen = json.load(open(sys.argv[1]))
truth = {e["image"].rsplit("/", 1)[-1].replace(".nii.gz", ""): (e["y"], e["s"]) for e in json.load(open(sys.argv[2]))["test"]}
for r in chosen["ranking"]:
    y, s = truth[r["id"]]
    print(f"   {r['id']}: disagreement {r['disagreement']:.2f} (binary {r['binary_probability']:.3f}, "
          f"segmentation {r['location_probability']:.3f}); y={y} s={s}")
PY

echo "== 7. annotation cost per label type (Sec. 4.1)"
for _ in $(seq 1 60); do
  code=$(curl -s -o "$out/cost.json" -w "%{http_code}" -X POST "$url/scoring/annotation_cost?run_sync=true" \
    -H "Content-Type: application/json" -d '{}')
  [ "$code" != 429 ] && break; sleep 1
done
"$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print('   total over', len(d['images']), 'images:',
{k: round(v, 2) for k, v in d['total_cost'].items()}); print('   test_00000_image:', d['images']['test_00000_image'])" \
  "$out/cost.json"

echo "== 8. fine-tune segmentation on the saved labels (2 epochs) and serve the result"
curl -sf -X POST "$url/train/segmentation?run_sync=true" -H "Content-Type: application/json" \
  -d '{"max_epochs": 2, "device": "cpu"}' | show
echo "server log: $out/server.log"
