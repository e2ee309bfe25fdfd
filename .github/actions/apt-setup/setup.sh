#!/bin/sh
# ghapt apt-setup: configure apt on a GitHub Actions runner to read a ghapt repository.
#
#  1. request a GitHub OIDC token for $GHAPT_AUDIENCE (needs `permissions: id-token: write`);
#  2. exchange it at $GHAPT_URL/token for a credential that lasts the job (the OIDC token
#     lives about 5 minutes);
#  3. pick the suites: $GHAPT_SUITE (default: the runner's VERSION_CODENAME, kept only if the
#     repository publishes it), then $GHAPT_SUITES;
#  4. install $GHAPT_URL/public.key as /etc/apt/keyrings/$NAME.asc, the deb822 source
#     /etc/apt/sources.list.d/$NAME.sources and /etc/apt/auth.conf.d/$NAME.conf (mode 0600).
#
# Environment: GHAPT_URL, GHAPT_AUDIENCE (required); GHAPT_SUITE (default: VERSION_CODENAME from
# GHAPT_OS_RELEASE, /etc/os-release); GHAPT_SUITES (stable; empty for none), GHAPT_COMPONENTS
# (main), GHAPT_NAME (ghapt); GHAPT_ROOT, a prefix for every file written (tests; files then
# refer to each other under it); SUDO, the command that writes as root (default: sudo unless
# already root; set it empty to write directly). Tokens never reach argv or the log: curl reads
# its Authorization header from stdin, and in Actions each token is masked first.
set -eu

fail() {
    if [ "${GITHUB_ACTIONS:-}" = true ]; then
        printf '::error title=ghapt apt-setup::%s\n' "$*"
    fi
    printf 'ghapt apt-setup: error: %s\n' "$*" >&2
    exit 1
}

notice() {
    if [ "${GITHUB_ACTIONS:-}" = true ]; then
        printf '::notice title=ghapt apt-setup::%s\n' "$*"
    fi
    printf 'ghapt apt-setup: %s\n' "$*" >&2
}

mask() {
    if [ "${GITHUB_ACTIONS:-}" = true ]; then
        printf '::add-mask::%s\n' "$1"
    fi
}

# json_field NAME: the string value of NAME in the JSON object on stdin.
json_field() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c '
import json, sys
try:
    value = json.load(sys.stdin)[sys.argv[1]]
except Exception:
    sys.exit(1)
if not isinstance(value, str):
    sys.exit(1)
print(value)
' "$1"
    else
        # No python3: good enough for the flat, escape-free objects these endpoints return.
        tr -d '\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"\\\\]*\)\".*/\1/p"
    fi
}

URL="${GHAPT_URL:-}"
AUDIENCE="${GHAPT_AUDIENCE:-}"
SUITE="${GHAPT_SUITE:-}"
SUITES="${GHAPT_SUITES-stable}"
OS_RELEASE="${GHAPT_OS_RELEASE:-/etc/os-release}"
AUTO=""
if [ -z "$SUITE" ] && [ -r "$OS_RELEASE" ]; then
    # The runner's codename (jammy, noble, bookworm): tried, and skipped if the repository lacks it.
    SUITE="$(sed -n 's/^VERSION_CODENAME=//p' "$OS_RELEASE" | head -n 1 | tr -d "\"' ")"
    AUTO=yes
fi
COMPONENTS="${GHAPT_COMPONENTS:-main}"
NAME="${GHAPT_NAME:-ghapt}"
ROOT="${GHAPT_ROOT:-}"
if [ -z "${SUDO+set}" ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
fi

[ -n "$URL" ] || fail "the url input is required"
[ -n "$AUDIENCE" ] || fail "the audience input is required"
case "$URL" in
    http://?* | https://?*) ;;
    *) fail "url must start with https:// (or http://), got: $URL" ;;
esac
URL="${URL%/}"
case "$NAME" in
    "" | *[!A-Za-z0-9._-]*) fail "name may only contain letters, digits, '.', '_' and '-'" ;;
esac
for word in $SUITE $SUITES $COMPONENTS; do
    case "$word" in
        *[!A-Za-z0-9._+-]*) fail "suites and components are names separated by spaces, got: $word" ;;
    esac
done
[ -n "$(printf '%s' "$COMPONENTS" | tr -d ' ')" ] || fail "components must name at least one component"
if [ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] || [ -z "${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-}" ]; then
    fail "no OIDC token available: give the job 'permissions: id-token: write'"
fi
mask "$ACTIONS_ID_TOKEN_REQUEST_TOKEN"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT INT TERM  # mktemp -d makes it 0700: only we read the tokens

# 1. The OIDC token (curl appends the audience with '&' after GitHub's ?api-version=...).
printf 'header = "Authorization: bearer %s"\n' "$ACTIONS_ID_TOKEN_REQUEST_TOKEN" |
    curl -sS -f -G --retry 3 --max-time 30 -K - --data-urlencode "audience=$AUDIENCE" \
        -o "$WORK/oidc.json" "$ACTIONS_ID_TOKEN_REQUEST_URL" ||
    fail "could not get an OIDC token from GitHub (ACTIONS_ID_TOKEN_REQUEST_URL refused the request)"
OIDC="$(json_field value <"$WORK/oidc.json")" || OIDC=""
[ -n "$OIDC" ] || fail "the OIDC token response has no value"
mask "$OIDC"

# 2. The exchange.
printf 'header = "Authorization: Bearer %s"\n' "$OIDC" |
    curl -sS -f -X POST --retry 3 --max-time 30 -K - -o "$WORK/token.json" "$URL/token" ||
    fail "the token exchange at $URL/token failed (is the audience '$AUDIENCE' the one the server demands, and is this repository allowed?)"
LOGIN="$(json_field login <"$WORK/token.json")" || LOGIN=""
PASSWORD="$(json_field password <"$WORK/token.json")" || PASSWORD=""
EXPIRES="$(json_field expires_at <"$WORK/token.json")" || EXPIRES=""
[ -n "$PASSWORD" ] || fail "the token exchange answered without a password"
mask "$PASSWORD"
case "$LOGIN$PASSWORD" in
    "" | *[!A-Za-z0-9._~+/=-]*) fail "the token exchange answered with an unusable login or password" ;;
esac

# 3. The suites: the distribution's own one if the repository publishes it, then the others.
suite_status() {
    printf 'user = "%s:%s"\n' "$LOGIN" "$PASSWORD" |
        curl -sS -o /dev/null -w '%{http_code}' --max-time 30 -K - "$URL/dists/$1/InRelease" || true
}
ENABLED=""
if [ -n "$SUITE" ]; then
    STATUS="$(suite_status "$SUITE")"
    case "$STATUS" in
        200) ENABLED="$SUITE" ;;
        404)
            [ -n "$AUTO" ] || fail "the repository has no suite '$SUITE' ($URL/dists/$SUITE/InRelease answered 404)"
            notice "the repository has no suite '$SUITE' (this runner's VERSION_CODENAME); enabling: $SUITES"
            ;;
        *) fail "could not check suite '$SUITE': $URL/dists/$SUITE/InRelease answered ${STATUS:-nothing}" ;;
    esac
fi
for word in $SUITES; do
    case " $ENABLED " in
        *" $word "*) ;;
        *) ENABLED="${ENABLED:+$ENABLED }$word" ;;
    esac
done
[ -n "$ENABLED" ] || fail "no suite to enable: set the suite or suites input"

# 4. The key, the source and the credentials.
curl -sS -f --retry 3 --max-time 30 -o "$WORK/key.asc" "$URL/public.key" ||
    fail "could not download the signing key from $URL/public.key"
head -n 1 "$WORK/key.asc" | grep -q -- '-----BEGIN PGP PUBLIC KEY BLOCK-----' ||
    fail "$URL/public.key is not an armored OpenPGP public key"

KEYRING="$ROOT/etc/apt/keyrings/$NAME.asc"
cat >"$WORK/sources" <<SOURCES
Types: deb
URIs: $URL/
Suites: $ENABLED
Components: $COMPONENTS
Signed-By: $KEYRING
SOURCES

# apt >= 1.9.5 matches a machine without a scheme only for https; plain http must be named.
case "$URL" in
    http://*) MACHINE="$URL" ;;
    *) MACHINE="${URL#https://}" ;;
esac
printf 'machine %s login %s password %s\n' "$MACHINE" "$LOGIN" "$PASSWORD" >"$WORK/auth"

$SUDO mkdir -p "$ROOT/etc/apt/keyrings" "$ROOT/etc/apt/sources.list.d" "$ROOT/etc/apt/auth.conf.d"
$SUDO install -m 0644 "$WORK/key.asc" "$KEYRING"
$SUDO install -m 0644 "$WORK/sources" "$ROOT/etc/apt/sources.list.d/$NAME.sources"
$SUDO install -m 0600 "$WORK/auth" "$ROOT/etc/apt/auth.conf.d/$NAME.conf"

if [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf 'expires-at=%s\n' "$EXPIRES" >>"$GITHUB_OUTPUT"
fi
printf 'ghapt apt-setup: %s configured (%s, suites: %s); credential valid until %s\n' \
    "$NAME" "$URL" "$ENABLED" "${EXPIRES:-unknown}"
