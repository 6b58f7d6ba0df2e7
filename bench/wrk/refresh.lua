-- POST /api/v1/users/refresh-token with a cookie from this thread's pool of refresh tokens
-- (distinct sessions, one per user); the successor from each answer's Set-Cookie goes back
-- into the pool, so every request presents a current token. Pool files: <dir>/tokens-<n>.txt
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

pool = {}
failed = 0

function init(args)
  local f = assert(io.open(args[1] .. "/tokens-" .. id .. ".txt", "r"))
  for line in f:lines() do
    if #line > 0 then table.insert(pool, line) end
  end
  f:close()
end

function request()
  local token = table.remove(pool, 1) or "exhausted"
  return wrk.format("POST", "/api/v1/users/refresh-token", { ["Cookie"] = "refreshToken=" .. token }, nil)
end

function response(status, headers, body)
  -- wrk keeps the last Set-Cookie header; both servers set refreshToken last
  local token = string.match(headers["Set-Cookie"] or "", "refreshToken=([^;]+)")
  if status == 200 and token then
    table.insert(pool, token)
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local lost = 0
  for _, t in ipairs(threads) do lost = lost + t:get("failed") end
  io.write(string.format("refresh-failures %d\n", lost))
end
