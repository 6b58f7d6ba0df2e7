// The Express design's user routes, written the way that design writes them (asyncHandler,
// ApiError/ApiResponse, verifyJWT middleware, the model's bcrypt pre-save hook and token
// methods), with an in-memory map standing in for MongoDB. Reference for bench/serve_vs_express.py only.
//   PORT=8001 ACCESS_TOKEN_SECRET=… REFRESH_TOKEN_SECRET=… node app.js
"use strict";
const crypto = require("crypto");
const express = require("express");
const cookieParser = require("cookie-parser");
const jwt = require("jsonwebtoken");
const bcrypt = require("bcrypt");

const { ACCESS_TOKEN_SECRET, REFRESH_TOKEN_SECRET } = process.env;
const ACCESS_TOKEN_EXPIRY = process.env.ACCESS_TOKEN_EXPIRY || "15m";
const REFRESH_TOKEN_EXPIRY = process.env.REFRESH_TOKEN_EXPIRY || "7d";
const ROUNDS = Number(process.env.BCRYPT_ROUNDS || 10);

class ApiError extends Error {
  constructor(statusCode, message = "Something went wrong", errors = []) {
    super(message);
    Object.assign(this, { statusCode, data: null, message, success: false, errors });
  }
}
class ApiResponse {
  constructor(statusCode, data, message = "Success") {
    Object.assign(this, { statusCode, data, message, success: statusCode < 400 });
  }
}
const asyncHandler = (fn) => (req, res, next) => Promise.resolve(fn(req, res, next)).catch(next);

// --- the "model": an in-memory collection with async lookups, as Mongoose would give --------
const users = new Map();
const User = {
  async findOne({ username, email }) {
    for (const u of users.values()) if (u.username === username || u.email === email) return u;
    return null;
  },
  async findById(id) { return users.get(String(id)) || null; },
  async create(fields) {
    const now = new Date();
    const user = { _id: crypto.randomBytes(12).toString("hex"), ...fields, createdAt: now, updatedAt: now, __v: 0 };
    user.password = await bcrypt.hash(user.password, ROUNDS); // the pre("save") hook
    users.set(user._id, user);
    return user;
  },
};
const isPasswordCorrect = (user, password) => bcrypt.compare(password, user.password);
const publicUser = ({ password, refreshToken, ...rest }) => rest;
const generateAccessToken = (u) =>
  jwt.sign({ _id: u._id, email: u.email, username: u.username, fullName: u.fullName }, ACCESS_TOKEN_SECRET,
    { expiresIn: ACCESS_TOKEN_EXPIRY });
const generateRefreshToken = (u) => jwt.sign({ _id: u._id }, REFRESH_TOKEN_SECRET, { expiresIn: REFRESH_TOKEN_EXPIRY });
async function generateAccessAndRefreshTokens(user) {
  const accessToken = generateAccessToken(user);
  const refreshToken = generateRefreshToken(user);
  user.refreshToken = refreshToken; // user.save({ validateBeforeSave: false })
  return { accessToken, refreshToken };
}
const options = { httpOnly: true, secure: true };

const verifyJWT = asyncHandler(async (req, _res, next) => {
  const token = req.cookies?.accessToken || req.header("Authorization")?.replace("Bearer ", "");
  if (!token) throw new ApiError(401, "Unauthorized request");
  let decoded;
  try {
    decoded = jwt.verify(token, ACCESS_TOKEN_SECRET);
  } catch (e) {
    throw new ApiError(401, e?.message || "Invalid access token");
  }
  const user = await User.findById(decoded?._id);
  if (!user) throw new ApiError(401, "Invalid Access Token");
  req.user = publicUser(user);
  next();
});

const router = express.Router();
router.post("/register", asyncHandler(async (req, res) => {
  const { fullName, email, username, password } = req.body;
  if ([fullName, email, username, password].some((f) => f?.trim() === "")) throw new ApiError(400, "All fields are required");
  if (await User.findOne({ username, email })) throw new ApiError(409, "User with email or username already exists");
  const user = await User.create({ fullName, email, password, username: username.toLowerCase() });
  return res.status(201).json(new ApiResponse(200, publicUser(user), "User registered Successfully"));
}));
router.post("/login", asyncHandler(async (req, res) => {
  const { email, username, password } = req.body;
  if (!username && !email) throw new ApiError(400, "username or email is required");
  const user = await User.findOne({ username, email });
  if (!user) throw new ApiError(404, "User does not exist");
  if (!(await isPasswordCorrect(user, password))) throw new ApiError(401, "Invalid user credentials");
  const { accessToken, refreshToken } = await generateAccessAndRefreshTokens(user);
  return res.status(200).cookie("accessToken", accessToken, options).cookie("refreshToken", refreshToken, options)
    .json(new ApiResponse(200, { user: publicUser(user), accessToken, refreshToken }, "User logged In Successfully"));
}));
router.post("/refresh-token", asyncHandler(async (req, res) => {
  const incomingRefreshToken = req.cookies.refreshToken || req.body.refreshToken;
  if (!incomingRefreshToken) throw new ApiError(401, "unauthorized request");
  let decoded;
  try {
    decoded = jwt.verify(incomingRefreshToken, REFRESH_TOKEN_SECRET);
  } catch (e) {
    throw new ApiError(401, e?.message || "Invalid refresh token");
  }
  const user = await User.findById(decoded?._id);
  if (!user) throw new ApiError(401, "Invalid refresh token");
  if (incomingRefreshToken !== user?.refreshToken) throw new ApiError(401, "Refresh token is expired or used");
  const { accessToken, refreshToken } = await generateAccessAndRefreshTokens(user);
  return res.status(200).cookie("accessToken", accessToken, options).cookie("refreshToken", refreshToken, options)
    .json(new ApiResponse(200, { accessToken, refreshToken }, "Access token refreshed"));
}));
router.post("/logout", verifyJWT, asyncHandler(async (req, res) => {
  users.get(req.user._id).refreshToken = undefined;
  return res.status(200).clearCookie("accessToken", options).clearCookie("refreshToken", options)
    .json(new ApiResponse(200, {}, "User logged Out"));
}));
router.get("/current-user", verifyJWT, asyncHandler(async (req, res) =>
  res.status(200).json(new ApiResponse(200, req.user, "User fetched successfully"))));

const app = express();
app.use(express.json({ limit: "16kb" }));
app.use(express.urlencoded({ extended: true, limit: "16kb" }));
app.use(cookieParser());
app.use("/api/v1/users", router);
app.use((err, _req, res, _next) => {
  const status = err.statusCode || 500;
  res.status(status).json({ statusCode: status, data: null, message: err.message, success: false, errors: err.errors || [] });
});
const server = app.listen(Number(process.env.PORT || 8001), "127.0.0.1", () =>
  console.error(`express reference listening on http://127.0.0.1:${server.address().port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
