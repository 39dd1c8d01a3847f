-- wrk script for benchmarks/load_serve.sh: POST /rec/recall, one user per request, a random
-- history of 5-20 item ids in [1, ITEMS) (ITEMS from the environment), top_k 50.
local items = tonumber(os.getenv("MINDREC_LOAD_ITEMS") or "367983")
local users = tonumber(os.getenv("MINDREC_LOAD_USERS") or "1")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local rows = {}
  for u = 1, users do
    local hist = {}
    for i = 1, math.random(5, 20) do hist[i] = math.random(1, items - 1) end
    rows[u] = "[" .. table.concat(hist, ",") .. "]"
  end
  local body = '{"top_k": 50, "hist_item": [' .. table.concat(rows, ",") .. ']}'
  return wrk.format(nil, "/rec/recall", nil, body)
end
