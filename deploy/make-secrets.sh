#!/usr/bin/env bash
# Generates the secrets docker-compose.yml reads, as files under deploy/secrets/ (git-ignored).
#
#   deploy/make-secrets.sh            # creates whatever is missing, keeps what exists
#
# It never overwrites a file: some secrets cannot simply change once used (the root password
# is baked into the database volume at its first start; changing FERNET_KEY makes stored
# credentials unreadable). To rotate one, read deploy/secrets/README.md, delete the file and
# run this again.
#
# Needs openssl, or python3 when openssl is missing. Environment knobs (defaults in brackets):
#   SECRETS_DIR [deploy/secrets]   MONGO_ROOT_USER [root]   MONGO_APP_USER [lead_ignite_app]
#   MONGO_HOST [mongo:27017]       MONGO_REPLICA_SET [rs0]
set -euo pipefail
umask 077

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${SECRETS_DIR:-$here/secrets}"
root_user="${MONGO_ROOT_USER:-root}"
app_user="${MONGO_APP_USER:-lead_ignite_app}"
mongo_host="${MONGO_HOST:-mongo:27017}"
replica_set="${MONGO_REPLICA_SET:-rs0}"

# User names go into a connection string unencoded: keep them to a safe alphabet.
for name in "$root_user" "$app_user"; do
    if [[ ! "$name" =~ ^[A-Za-z0-9_.-]{1,64}$ ]]; then
        echo "error: user name '$name' must match [A-Za-z0-9_.-]{1,64}" >&2
        exit 1
    fi
done
if [ "$root_user" = "$app_user" ]; then
    echo "error: the root and application users must differ" >&2
    exit 1
fi

# $1 random bytes as lower-case hex (so passwords need no URL encoding).
rand_hex() {
    if command -v openssl > /dev/null 2>&1; then
        openssl rand -hex "$1"
    else
        python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"
    fi
}

# A Fernet key: 32 random bytes, url-safe base64 (44 characters with the padding).
fernet_key() {
    if command -v openssl > /dev/null 2>&1; then
        openssl rand -base64 32 | tr '+/' '-_'
    else
        python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'
    fi
}

created=()
kept=()

# write_secret NAME VALUE: writes deploy/secrets/NAME unless it already has content.
write_secret() {
    local file="$dir/$1"
    if [ -s "$file" ]; then
        kept+=("$1")
        return
    fi
    local tmp
    tmp="$(mktemp "$dir/.$1.XXXXXX")"
    printf '%s' "$2" > "$tmp"
    # Readable inside the containers, whose processes are not root (Compose bind-mounts file
    # secrets with the host file's mode); the 700 folder keeps other host users out.
    chmod 644 "$tmp"
    mv -f "$tmp" "$file"
    created+=("$1")
}

mkdir -p "$dir"
chmod 700 "$dir"

write_secret mongo_root_username "$root_user"
write_secret mongo_root_password "$(rand_hex 32)"
# authSource=admin: the application user lives in the admin database (deploy/mongo/init-replica-set.js);
# the database the service uses comes from MONGODB_DB, not from this URL.
write_secret mongodb_url \
    "mongodb://${app_user}:$(rand_hex 32)@${mongo_host}/?replicaSet=${replica_set}&authSource=admin"
write_secret jwt_secret "$(rand_hex 32)"
write_secret fernet_key "$(fernet_key)"
write_secret metrics_token "$(rand_hex 32)"

if [ "${#created[@]}" -gt 0 ]; then
    echo "created in $dir: ${created[*]}"
fi
if [ "${#kept[@]}" -gt 0 ]; then
    echo "kept (already there): ${kept[*]}"
fi
echo "next: docker compose up -d --build   (see docs/deployment.md)"
