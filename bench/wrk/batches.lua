-- Signed 100-event HubSpot batches, read from a file of pre-signed requests (wrk's Lua cannot HMAC).
-- Each line: <timestamp>\t<signature>\t<body>. Every request is a distinct batch of new events.
local requests_ = {}
local index = 0
local threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("id", #threads - 1)
  thread:set("nthreads", 2)
end
init = function(args)
  -- Each thread takes every nthreads-th line, so no two threads ever send the same batch.
  local n = 0
  for line in io.lines(args[1]) do
    if n % nthreads == id then
      local ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
      table.insert(requests_, {ts = ts, sig = sig, body = body})
    end
    n = n + 1
  end
end
request = function()
  index = index + 1
  if index > #requests_ then index = 1 end
  local r = requests_[index]
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-HubSpot-Signature-v3"] = r.sig,
    ["X-HubSpot-Request-Timestamp"] = r.ts}, r.body)
end
