#!/usr/bin/env bash
# Installs what Cascade needs to build and test on a Debian 12 machine:
# Debian packages (skipped when present) and the Kafka broker's jars from Maven
# Central (skipped when the classpath is already there). Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential cmake pkg-config librdkafka-dev libprotobuf-c-dev
      protobuf-c-compiler libhiredis-dev check libcjson-dev libyaml-dev
      libpng-dev zlib1g-dev libssl-dev libcurl4-openssl-dev redis-server
      valgrind maven default-jre-headless python3 redis-tools procps
      util-linux iproute2 curl docker-compose)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
# A JDK may already be present without Debian's default-jre package; the
# Kafka 4 broker needs Java 17 or newer.
java_major() {
    java -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p'
}
if command -v java >/dev/null 2>&1 && [ "$(java_major)" -ge 17 ] 2>/dev/null; then
    missing=("${missing[@]/default-jre-headless/}")
fi
if command -v mvn >/dev/null 2>&1; then
    missing=("${missing[@]/maven/}")
fi
read -r -a missing <<<"${missing[*]}"
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Kafka jars: the classpath lives in .deps/kafka-libs, fetched by our own pom.
# The marker holds the pom's hash, so a changed pom fetches a new classpath;
# the fetch goes to a scratch dir first, so a failed one leaves no half set.
libs="$here/.deps/kafka-libs"
pom="$here/scripts/kafka/pom.xml"
want=$(sha256sum "$pom" | cut -d' ' -f1)
if [ "$(cat "$libs/.complete" 2>/dev/null)" != "$want" ]; then
    echo "deps: fetching Kafka jars from Maven Central" >&2
    mkdir -p "$here/.deps"
    tmp=$(mktemp -d "$here/.deps/kafka-libs.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >&2
    echo "$want" >"$tmp/.complete"
    rm -rf "$libs"
    mv "$tmp" "$libs"
    trap - EXIT
fi
