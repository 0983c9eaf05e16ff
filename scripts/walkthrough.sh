#!/usr/bin/env bash
# The drive with curl alone, against a running Stowage on one stack:
# `embedded` (SQLite, local store) or `services` (PostgreSQL, S3, NATS from
# the STOWAGE_TEST_* variables .ci/run exports). Makes /Reports/2026,
# uploads into it three ways (presigned PUT, multipart, tus), uploads a
# second revision, races a conflict and finds the conflicted copy, shares
# the folder with an editor who uploads inside it, hits the quota with a
# presigned upload (413), and sees a password link with max_downloads 1
# refuse its second download (410). Fails at the first step that does not
# answer as the contract says. Usage: scripts/walkthrough.sh BINARY STACK
set -euo pipefail
bin=$(realpath "$1"); stack=$2
work=$(mktemp -d /tmp/stowage-walkthrough.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
args=(--listen "127.0.0.1:$port" --data-dir "$work/data" --pbkdf2-rounds 1000
      --default-quota 20MiB)
if [ "$stack" = services ]; then
  run=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:16])')
  psql "$STOWAGE_TEST_DATABASE_URL" -qc "CREATE DATABASE stowage_t_wt_$run"
  args+=(--database-url "${STOWAGE_TEST_DATABASE_URL%/*}/stowage_t_wt_$run"
         --s3-endpoint "$STOWAGE_TEST_S3_ENDPOINT" --s3-bucket "stowage-wt-$run"
         --aws-access-key-id "$STOWAGE_TEST_S3_ACCESS_KEY" --aws-secret-access-key "$STOWAGE_TEST_S3_SECRET_KEY"
         --nats-url "$STOWAGE_TEST_NATS_URL" --nats-ingest-subject "stowage.wt$run.ingest")
fi
"$bin" "${args[@]}" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

fail() { echo "walkthrough ($stack): $*" >&2; tail -20 "$work/server.log" >&2; exit 1; }
# call EXPECTED_STATUS METHOD PATH [JSON] [TOKEN]: the body, on stdout.
call() {
  local want=$1 method=$2 path=$3 body=${4:-} token=${5:-$TOKEN} out status
  out=$(mktemp -p "$work")
  status=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" "$base$path" \
    -H "authorization: Bearer $token" ${body:+-H 'content-type: application/json' -d "$body"})
  [ "$status" = "$want" ] || fail "$method $path: $status, not $want: $(cat "$out")"
  cat "$out"
}
# put TICKET_JSON FILE: PUTs the file to a presigned ticket with its headers.
put() {
  local headers=()
  while IFS= read -r h; do headers+=(-H "$h"); done \
    < <(jq -r '.headers | to_entries[] | select(.key | ascii_downcase != "content-length") | "\(.key): \(.value)"' <<<"$1")
  curl -fsS -o /dev/null -X PUT "${headers[@]}" --data-binary @"$2" "$(jq -r .url <<<"$1")" \
    || fail "PUT to $(jq -r .url <<<"$1" | cut -d'?' -f1)"
}
signup() {
  curl -fsS -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"correct horse battery\"}" | jq -r .access_token
}

TOKEN=$(signup "owner-$RANDOM@example.com")
echo "1. /Reports/2026"
reports=$(call 201 POST /api/v1/folders '{"name":"Reports"}' | jq -r .id)
year=$(call 201 POST /api/v1/folders "{\"name\":\"2026\",\"parent_id\":\"$reports\"}" | jq -r .id)
[ "$(call 200 GET '/api/v1/resolve?path=/Reports/2026' | jq -r .id)" = "$year" ] || fail "resolve"

echo "2. three ways in: presigned PUT, multipart, tus"
printf 'quarterly numbers, first draft\n' >"$work/q1.txt"
size=$(stat -c %s "$work/q1.txt")
made=$(call 201 POST /api/v1/uploads "{\"name\":\"q1.txt\",\"size\":$size,\"parent_id\":\"$year\"}")
q1=$(jq -r .file.id <<<"$made")
put "$(jq .upload <<<"$made")" "$work/q1.txt"
call 200 POST "/api/v1/files/$q1/confirm" >/dev/null
head -c 6000000 /dev/urandom >"$work/big.bin"
mp=$(call 201 POST /api/v1/uploads/multipart "{\"name\":\"big.bin\",\"size\":6000000,\"part_size\":5242880,\"parent_id\":\"$year\"}")
upload=$(jq -r .upload_id <<<"$mp")
parts=()
for n in 1 2; do
  dd if="$work/big.bin" of="$work/part$n" bs=5242880 skip=$((n - 1)) count=1 status=none
  url=$(call 200 GET "/api/v1/uploads/multipart/$upload/parts/$n" | jq -r .url)
  etag=$(curl -fsS -o /dev/null -D - -X PUT --data-binary @"$work/part$n" "$url" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag"{print $2}')
  parts+=("{\"part_number\":$n,\"etag\":$(jq -R . <<<"$etag")}")
done
call 200 POST "/api/v1/uploads/multipart/$upload/complete" "{\"parts\":[$(IFS=,; echo "${parts[*]}")]}" >/dev/null
printf 'sent through the server\n' >"$work/tus.txt"
b64() { printf %s "$1" | base64 -w0; }
status=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/api/v1/tus" -H "authorization: Bearer $TOKEN" \
  -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $(stat -c %s "$work/tus.txt")" \
  -H "Upload-Metadata: filename $(b64 tus.txt),parent_id $(b64 "$year")" \
  -H 'Content-Type: application/offset+octet-stream' --data-binary @"$work/tus.txt")
[ "$status" = 201 ] || fail "tus creation-with-upload: $status"
names=$(call 200 GET "/api/v1/folders/$year/children" | jq -r '[.items[].name] | sort | join(",")')
[ "$names" = "big.bin,q1.txt,tus.txt" ] || fail "children: $names"

echo "3. a second revision"
printf 'quarterly numbers, final\n' >"$work/q1-final.txt"
size=$(stat -c %s "$work/q1-final.txt")
made=$(call 201 POST /api/v1/uploads "{\"name\":\"q1.txt\",\"size\":$size,\"parent_id\":\"$year\",\"on_conflict\":\"revision\",\"base_revision\":1}")
[ "$(jq -r .file.id <<<"$made")" = "$q1" ] || fail "a revision upload is the same file"
put "$(jq .upload <<<"$made")" "$work/q1-final.txt"
[ "$(call 200 POST "/api/v1/files/$q1/confirm" | jq .revision)" = 2 ] || fail "revision 2"
[ "$(call 200 GET "/api/v1/files/$q1/revisions" | jq -c '[.items[].number]')" = "[2,1]" ] || fail "revisions"
old=$(curl -fsS -H "authorization: Bearer $TOKEN" -o /dev/null -w '%{redirect_url}' "$base/api/v1/files/$q1/revisions/1/content")
cmp -s <(curl -fsS "$old") "$work/q1.txt" || fail "revision 1's bytes"

echo "4. a conflict: two uploads based on revision 2"
printf 'edit from the laptop\n' >"$work/laptop.txt"; printf 'edit from the phone!\n' >"$work/phone.txt"
body="{\"name\":\"q1.txt\",\"size\":21,\"parent_id\":\"$year\",\"on_conflict\":\"revision\",\"base_revision\":2}"
laptop=$(call 201 POST /api/v1/uploads "$body"); phone=$(call 201 POST /api/v1/uploads "$body")
put "$(jq .upload <<<"$laptop")" "$work/laptop.txt"; put "$(jq .upload <<<"$phone")" "$work/phone.txt"
call 200 POST "/api/v1/files/$q1/confirm" >/dev/null
copy=$(call 200 GET "/api/v1/folders/$year/children" | jq -r ".items[] | select(.conflict_of == \"$q1\") | .name")
case "$copy" in "q1 (conflicted copy "*").txt") ;; *) fail "no conflicted copy: '$copy'" ;; esac
[ "$(call 200 GET "/api/v1/files/$q1" | jq .revision)" = 3 ] || fail "revision 3"
call 412 POST /api/v1/uploads "$body" | jq -e '.code == "revision_conflict"' >/dev/null

echo "5. an editor uploads inside the shared folder"
editor_mail="editor-$RANDOM@example.com"; EDITOR=$(signup "$editor_mail")
call 201 POST "/api/v1/folders/$reports/shares" "{\"email\":\"$editor_mail\",\"role\":\"editor\"}" >/dev/null
made=$(call 201 POST /api/v1/uploads "{\"name\":\"from-editor.txt\",\"size\":$size,\"parent_id\":\"$year\"}" "$EDITOR")
[ "$(jq -r .file.owner_id <<<"$made")" = "$(call 200 GET /api/v1/me | jq -r .id)" ] || fail "the folder's owner owns it"
put "$(jq .upload <<<"$made")" "$work/q1-final.txt"
call 200 POST "/api/v1/files/$(jq -r .file.id <<<"$made")/confirm" '' "$EDITOR" >/dev/null

echo "6. the quota holds for a presigned upload"
call 413 POST /api/v1/uploads '{"name":"huge.bin","size":20000000}' | jq -e '.code == "quota_exceeded"' >/dev/null

echo "7. a password link good for one download"
link=$(call 201 POST "/api/v1/files/$q1/links" '{"password":"open sesame","max_downloads":1}' | jq -r .url)
first=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Link-Password: open sesame' "$link")
second=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Link-Password: open sesame' "$link")
[ "$first $second" = "302 410" ] || fail "link downloads: $first then $second"
echo "walkthrough ($stack): every step answered as the contract says"
