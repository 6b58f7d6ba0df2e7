-- POST /api/v1/users/login for one user, again and again. args: username password
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = string.format('{"username":"%s","password":"%s"}', args[1], args[2])
end
