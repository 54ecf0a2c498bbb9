// One-shot set-up of the `mongo` service, run by the `mongo-init` service of docker-compose.yml:
//
//   mongosh --nodb --quiet --norc /opt/lead-ignite/init-replica-set.js
//
// Safe to run any number of times (it runs on every `docker compose up`):
//   1. waits until mongod accepts an authenticated connection as the root user
//      (the root user itself is created by the image's entrypoint on an empty volume);
//   2. initiates the single-node replica set if it is not initiated yet;
//   3. waits until this node is the writable primary;
//   4. creates the application user named in the `mongodb_url` secret, or resets its password
//      and roles if it exists, with readWrite and collMod (validators, hidden indexes) on the
//      service's database and nothing else.
//
// Credentials are read from the secret files inside this script, never passed on a command
// line (where `ps` would show them), and never printed.
//
// Environment: MONGO_HOST (this member's address as the other containers reach it,
// "mongo:27017"), MONGO_REPLICA_SET ("rs0"), MONGODB_DB ("lead_ignite"),
// SECRETS_DIR ("/run/secrets"), INIT_TIMEOUT_SECONDS ("180").

const fs = require("fs");

const env = process.env;
const HOST = env.MONGO_HOST || "mongo:27017";
const REPLICA_SET = env.MONGO_REPLICA_SET || "rs0";
const APP_DB = env.MONGODB_DB || "lead_ignite";
const SECRETS = env.SECRETS_DIR || "/run/secrets";
const TIMEOUT_MS = 1000 * Number(env.INIT_TIMEOUT_SECONDS || "180");

// MongoDB error codes this script expects.
const NOT_YET_INITIALIZED = 94;
const ALREADY_INITIALIZED = 23;

function log(message) {
  print(`mongo-init: ${message}`);
}

function fail(message) {
  log(`ERROR: ${message}`);
  quit(1);
}

function secret(name) {
  const path = `${SECRETS}/${name}`;
  let value;
  try {
    value = fs.readFileSync(path, "utf8").trim();
  } catch (e) {
    fail(`cannot read the secret ${path} (${e.message}); run deploy/make-secrets.sh`);
  }
  if (!value) {
    fail(`the secret ${path} is empty`);
  }
  return value;
}

// The user, password and authentication database of a mongodb:// URL. The authentication
// database is what the driver would use: authSource, else the database in the path, else admin.
function credentialsOf(url) {
  const match = /^mongodb(?:\+srv)?:\/\/([^:@/]+):([^@/]+)@([^/?]+)(?:\/([^?]*))?(?:\?(.*))?$/.exec(
    url,
  );
  if (!match) {
    fail("the mongodb_url secret must look like mongodb://USER:PASSWORD@HOST/?...");
  }
  const params = {};
  for (const pair of (match[5] || "").split("&")) {
    if (pair) {
      const [key, value = ""] = pair.split("=");
      params[key] = decodeURIComponent(value);
    }
  }
  return {
    user: decodeURIComponent(match[1]),
    password: decodeURIComponent(match[2]),
    authDb: params.authSource || decodeURIComponent(match[4] || "") || "admin",
  };
}

// Runs a command, returning {ok, result} or {ok: false, error} instead of throwing.
function attempt(database, command) {
  try {
    const result = database.runCommand(command);
    if (result && result.ok === 0) {
      return { ok: false, error: result };
    }
    return { ok: true, result };
  } catch (e) {
    return { ok: false, error: e };
  }
}

const deadline = Date.now() + TIMEOUT_MS;

function waitFor(what, check) {
  let last = "";
  for (;;) {
    const outcome = check();
    if (outcome === true) {
      return;
    }
    last = String(outcome || last);
    if (Date.now() > deadline) {
      fail(`gave up waiting for ${what} after ${TIMEOUT_MS / 1000}s: ${last}`);
    }
    sleep(1000);
  }
}

const rootUser = secret("mongo_root_username");
const rootPassword = secret("mongo_root_password");
const app = credentialsOf(secret("mongodb_url"));

if (app.authDb === "admin" && app.user === rootUser) {
  fail("the application user in mongodb_url must not be the root user");
}
if (!/^[^/\\. "$*<>:|?\0]{1,63}$/.test(APP_DB)) {
  fail(`MONGODB_DB=${APP_DB} is not a valid database name`);
}

// 1. Connect as root. directConnection: before the set is initiated there is no primary to
// discover; the root user is in the admin database. Short timeouts so each try is quick.
const rootUrl =
  `mongodb://${encodeURIComponent(rootUser)}:${encodeURIComponent(rootPassword)}@${HOST}/admin` +
  "?authSource=admin&directConnection=true&serverSelectionTimeoutMS=2000&connectTimeoutMS=2000";
let admin = null;
waitFor(`an authenticated connection to ${HOST}`, () => {
  try {
    const candidate = connect(rootUrl);
    candidate.runCommand({ ping: 1 });
    admin = candidate.getSiblingDB("admin");
    return true;
  } catch (e) {
    // Authentication failures are not transient: the volume was initialised with other root
    // credentials than the ones in deploy/secrets/ now.
    if (e && (e.code === 18 || /Authentication failed/i.test(String(e.message)))) {
      fail(
        "authentication as the root user failed: the mongo-data volume was initialised " +
          "with other root credentials than deploy/secrets/mongo_root_* hold now",
      );
    }
    return e.message;
  }
});
log(`connected to ${HOST} as the root user`);

// 2. Initiate the replica set once.
const status = attempt(admin, { replSetGetStatus: 1 });
if (status.ok) {
  if (status.result.set !== REPLICA_SET) {
    fail(`this node belongs to replica set ${status.result.set}, expected ${REPLICA_SET}`);
  }
  log(`replica set ${REPLICA_SET} already initiated`);
} else if (status.error.code === NOT_YET_INITIALIZED) {
  const initiated = attempt(admin, {
    replSetInitiate: { _id: REPLICA_SET, members: [{ _id: 0, host: HOST }] },
  });
  if (!initiated.ok && initiated.error.code !== ALREADY_INITIALIZED) {
    fail(`replSetInitiate failed: ${initiated.error.message || tojson(initiated.error)}`);
  }
  log(`initiated replica set ${REPLICA_SET} with member ${HOST}`);
} else {
  fail(`replSetGetStatus failed: ${status.error.message || tojson(status.error)}`);
}

// 3. Wait until this node has been elected primary (a few seconds after the initiation).
waitFor("this node to become the writable primary", () => {
  const hello = attempt(admin, { hello: 1 });
  if (hello.ok && hello.result.isWritablePrimary) {
    return true;
  }
  return hello.ok ? "not primary yet" : hello.error.message;
});
log("this node is the writable primary");

// 4. The application user: exactly readWrite on the service's database. Resetting password and
// roles on every run makes the database converge on the secret (rotation: change the password
// in deploy/secrets/mongodb_url, run mongo-init again, restart the api).
// Plus `collMod` on the same database (a role of its own, not dbAdmin, which could drop it):
// `validators --apply` installs the $jsonSchema validators and `indexes --apply` hides an old
// index before dropping it, both with collMod, from the api container as this user.
const SCHEMA_ROLE = "leadIgniteSchema";
const schemaRole = {
  privileges: [{ resource: { db: APP_DB, collection: "" }, actions: ["collMod"] }],
  roles: [],
};
const appDb = admin.getSiblingDB(APP_DB);
const roleFound = attempt(appDb, { rolesInfo: SCHEMA_ROLE });
if (!roleFound.ok) {
  fail(`rolesInfo failed: ${roleFound.error.message || tojson(roleFound.error)}`);
}
const roleCommand = roleFound.result.roles.length > 0
  ? { updateRole: SCHEMA_ROLE, ...schemaRole, writeConcern: { w: "majority", wtimeout: 30000 } }
  : { createRole: SCHEMA_ROLE, ...schemaRole, writeConcern: { w: "majority", wtimeout: 30000 } };
const roleWritten = attempt(appDb, roleCommand);
if (!roleWritten.ok) {
  fail(`${SCHEMA_ROLE} role: ${roleWritten.error.message || tojson(roleWritten.error)}`);
}
const roles = [{ role: "readWrite", db: APP_DB }, { role: SCHEMA_ROLE, db: APP_DB }];
const writeConcern = { w: "majority", wtimeout: 30000 };
const authDb = admin.getSiblingDB(app.authDb);
const found = attempt(authDb, { usersInfo: { user: app.user, db: app.authDb } });
if (!found.ok) {
  fail(`usersInfo failed: ${found.error.message || tojson(found.error)}`);
}
const exists = found.result.users.length > 0;
const command = exists
  ? { updateUser: app.user, pwd: app.password, roles, writeConcern }
  : { createUser: app.user, pwd: app.password, roles, writeConcern };
const written = attempt(authDb, command);
if (!written.ok) {
  fail(`${exists ? "updateUser" : "createUser"} ${app.user} failed: ${written.error.message}`);
}
log(
  `${exists ? "updated" : "created"} user ${app.user} (in ${app.authDb}) with readWrite and ` +
    `collMod on ${APP_DB} only`,
);
log("done");
