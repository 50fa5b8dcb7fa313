-- wrk script of bench/load.sh. Environment:
--   WRK_LABEL   scenario name written to the results
--   WRK_OUT     results file (a tab-separated line is appended)
--   WRK_MODE    get   : GET WRK_PATH
--               body  : POST WRK_PATH with the JSON bodies of WRK_FILE (one
--                       a line), round-robin, each thread from its own offset
--               codes : POST WRK_PATH {"code":"<line>"}: each code of
--                       WRK_FILE once, the lines dealt to the threads
--               bearer: GET WRK_PATH with "Authorization: Bearer <line>"
--                       for the tokens of WRK_FILE, round-robin
--   WRK_THREADS wrk's -t (to deal the codes)
-- Every request goes through request() whatever the mode, so that the Lua
-- cost per request is the same in every scenario.

local mode = os.getenv("WRK_MODE") or "get"
local path = os.getenv("WRK_PATH") or "/"
local file = os.getenv("WRK_FILE")
local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")

local threads = {}
local nextid = 0

function setup(thread)
  thread:set("id", nextid)
  nextid = nextid + 1
  table.insert(threads, thread)
end

local reqs = {}
local idx = 0
wrapped = 0

local function lines(f)
  local out = {}
  for line in io.lines(f) do
    if line ~= "" then table.insert(out, line) end
  end
  return out
end

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  if mode == "get" then
    reqs[1] = wrk.format("GET", path)
  elseif mode == "body" then
    for _, body in ipairs(lines(file)) do
      table.insert(reqs, wrk.format("POST", path, headers, body))
    end
    -- threads start at different bodies
    idx = (id * 7919) % #reqs
  elseif mode == "codes" then
    for i, code in ipairs(lines(file)) do
      if (i - 1) % nthreads == id then
        table.insert(reqs, wrk.format("POST", path, headers, '{"code":"' .. code .. '"}'))
      end
    end
  elseif mode == "bearer" then
    for _, tok in ipairs(lines(file)) do
      table.insert(reqs, wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tok }))
    end
    idx = (id * 7919) % #reqs
  else
    error("WRK_MODE must be get, body, codes or bearer")
  end
  if #reqs == 0 then error("no requests prepared") end
end

function request()
  idx = idx + 1
  if idx > #reqs then
    idx = 1
    wrapped = wrapped + 1
  end
  return reqs[idx]
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    if mode == "codes" then w = w + (t:get("wrapped") or 0) end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  local line = string.format("%s\t%d\t%.3f\t%.1f\t%.0f\t%.0f\t%.0f\t%d\t%d\t%d\t%d\t%d\t%d\n",
    os.getenv("WRK_LABEL") or mode, summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, w)
  local out = os.getenv("WRK_OUT")
  if out and out ~= "" then
    local f = assert(io.open(out, "a"))
    f:write(line)
    f:close()
  end
  io.write(line)
end
