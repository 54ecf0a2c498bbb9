#!/bin/sh
# Entrypoint of the API image (Dockerfile): turns secret files into environment variables,
# then runs the command (uvicorn by default).
#
# The service reads its configuration from environment variables only (service/core/settings.py),
# while Docker and Compose hand secrets over as files under /run/secrets/. So, as the official
# database images do, every variable NAME_FILE=/path in the environment becomes NAME=<content
# of /path> (trailing newlines dropped) and NAME_FILE is removed. docker-compose.yml sets
# MONGODB_URL_FILE, JWT_SECRET_FILE, FERNET_KEY_FILE and METRICS_TOKEN_FILE this way.
#
# Refused, so that a deployment mistake stops the container instead of starting it with a
# surprise: NAME and NAME_FILE both set, a file that cannot be read, an empty file.
set -eu

# Names only from lines that look like NAME_FILE=..., NAME in upper case (validated here,
# which is what makes the `eval`s below safe).
file_vars=$(env | sed -n 's/^\([A-Z][A-Z0-9_]*_FILE\)=.*$/\1/p' | sort -u)

for file_var in $file_vars; do
    var=${file_var%_FILE}
    eval "path=\${$file_var:-}"
    eval "current=\${$var:-}"
    if [ -z "$path" ]; then
        continue
    fi
    if [ -n "$current" ]; then
        echo "entrypoint: both $var and $file_var are set; set only one" >&2
        exit 1
    fi
    if [ ! -f "$path" ] || [ ! -r "$path" ]; then
        echo "entrypoint: $file_var=$path is not a readable file" >&2
        exit 1
    fi
    value=$(cat "$path")
    if [ -z "$value" ]; then
        echo "entrypoint: $path ($file_var) is empty" >&2
        exit 1
    fi
    export "$var=$value"
    unset "$file_var"
done

exec "$@"
