-- One association per request, each with its own ids (so every request is real, new work).
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-api-token"
request = function()
  counter = counter + 1
  local body = string.format(
    '{"associations": [{"fromObjectType": "deals", "fromObjectId": "%d%d", "toObjectType": "contacts", "toObjectId": "%d"}]}',
    math.random(1, 99999), counter, counter)
  return wrk.format(nil, nil, nil, body)
end
