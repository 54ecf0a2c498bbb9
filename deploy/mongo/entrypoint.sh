#!/usr/bin/env bash
# Entrypoint of the `mongo` service in docker-compose.yml: makes sure the replica set's keyFile
# exists with the owner and mode mongod demands, then hands over to the image's own entrypoint
# (which creates the root user from MONGO_INITDB_ROOT_*_FILE on an empty volume and drops to
# the mongodb user).
#
# Why a keyFile on a single node: with authentication on, mongod requires one for any replica
# set (members authenticate to each other with it). It is generated here, at the first start,
# into the `mongo-config` volume, so it is never in the repository or the image. Every member
# added later needs a copy of the same file (see docs/deployment.md).
set -Eeuo pipefail

keyfile="${MONGO_KEYFILE:-/data/configdb/keyfile}"
# The official image's mongodb user and group (uid/gid 999): mongod runs as them.
mongodb_uid=999
mongodb_gid=999

if [ "$(id -u)" != 0 ]; then
    echo "lead-ignite mongo entrypoint: must start as root to set up $keyfile" >&2
    exit 1
fi

if [ ! -s "$keyfile" ]; then
    mkdir -p "$(dirname "$keyfile")"
    tmp="$(mktemp "$keyfile.XXXXXX")"
    # 756 random bytes = 1008 base64 characters: within mongod's limit (6 to 1024 characters,
    # base64 alphabet only). Written to a temporary file and renamed, so a crash never leaves
    # a half-written key behind.
    head -c 756 /dev/urandom | base64 -w 0 > "$tmp"
    chown "$mongodb_uid:$mongodb_gid" "$tmp"
    chmod 400 "$tmp"
    mv -f "$tmp" "$keyfile"
    echo "lead-ignite mongo entrypoint: generated the replica-set keyFile $keyfile" >&2
fi

# Enforced at every start (a restored backup or a copied volume may have lost them): mongod
# refuses a keyFile that group or others can read.
chown "$mongodb_uid:$mongodb_gid" "$keyfile"
chmod 400 "$keyfile"

exec /usr/local/bin/docker-entrypoint.sh "$@"
