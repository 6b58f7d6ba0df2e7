// What the Express design does with tokens and passwords, for jwtctl's interop tests.
//   node express.js sign PAYLOAD_JSON EXPIRES_IN      sign like the design (ACCESS_TOKEN_SECRET)
//   node express.js verify TOKEN                      verify like its middleware
//   node express.js verify-jwk TOKEN JWK_JSON ALG     verify with a public key from a JWK set
//   node express.js bcrypt-compare PASSWORD HASH      the model's isPasswordCorrect
//   node express.js bcrypt-hash PASSWORD              the model's pre-save hook (cost 10)
// Prints one JSON document; exits 1 with {"error": ...} when jsonwebtoken refuses.
"use strict";
const crypto = require("crypto");
const jwt = require("jsonwebtoken");
const bcrypt = require("bcryptjs");

const [cmd, ...args] = process.argv.slice(2);
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");
try {
  if (cmd === "sign") {
    print({ token: jwt.sign(JSON.parse(args[0]), process.env.ACCESS_TOKEN_SECRET, { expiresIn: args[1] }) });
  } else if (cmd === "verify") {
    print({ payload: jwt.verify(args[0], process.env.ACCESS_TOKEN_SECRET) });
  } else if (cmd === "verify-jwk") {
    const key = crypto.createPublicKey({ key: JSON.parse(args[1]), format: "jwk" });
    print({ payload: jwt.verify(args[0], key, { algorithms: [args[2]] }) });
  } else if (cmd === "bcrypt-compare") {
    print({ match: bcrypt.compareSync(args[0], args[1]) });
  } else if (cmd === "bcrypt-hash") {
    print({ hash: bcrypt.hashSync(args[0], 10) });
  } else {
    throw new Error("unknown command " + cmd);
  }
} catch (err) {
  print({ error: String(err && err.message) });
  process.exit(1);
}
