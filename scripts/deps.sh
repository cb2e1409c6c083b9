#!/usr/bin/env bash
# Installs what Cascade needs to build and test on a Debian 12 machine:
# Debian packages (skipped when present) and the Kafka broker's jars from Maven
# Central (skipped when the classpath is already there). Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential cmake pkg-config librdkafka-dev libprotobuf-c-dev
      protobuf-c-compiler libhiredis-dev check libcjson-dev libyaml-dev
      libpng-dev zlib1g-dev libssl-dev libcurl4-openssl-dev redis-server
      valgrind maven default-jre-headless)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
# A JDK may already be present without Debian's default-jre package.
if command -v java >/dev/null 2>&1; then
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
libs="$here/.deps/kafka-libs"
if [ ! -f "$libs/.complete" ]; then
    echo "deps: fetching Kafka jars from Maven Central" >&2
    mkdir -p "$libs"
    mvn -q -B -f "$here/scripts/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs" >&2
    touch "$libs/.complete"
fi
