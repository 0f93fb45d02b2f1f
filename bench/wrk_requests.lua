-- The wrk script of itn_throughput and usage_record (bench/itn_throughput.py, bench/usage_record.py):
-- the measured runs and the /healthz floor go through this same script, so the generator does the
-- same work per request.
--
--   wrk -t T -c C -d D -s bench/wrk_requests.lua URL -- METHOD PATH THREADS [BODIES [TYPE [AUTHORIZATION]]]
--
-- With BODIES (a file, one request body per line), each request sends the next body of the file:
-- thread i (from 0) takes lines i, i+T, i+2T, ..., so no body is ever sent twice. A line
-- "PATH<TAB>BODY" is sent to its own PATH instead of the command line's (a form-encoded or compact
-- JSON body never holds a raw tab). TYPE is the bodies' Content-Type (default form-encoded);
-- AUTHORIZATION, when given, is sent as the Authorization header of every body's request. A thread that has
-- sent its whole share sends nothing more (its connections wait out the run) and done() reports it
-- as exhausted: the caller must treat that run as void, since the rate would count idle time.
-- Without BODIES every request is METHOD PATH with no body.
--
-- done() prints, as its last line, one JSON object: seconds, requests, sent, exhausted (threads),
-- statuses (per HTTP status) and errors (wrk's socket errors and timeouts).

local threads = {}

function setup(thread)
    thread:set("id", #threads)
    threads[#threads + 1] = thread
end

function init(args)
    local method, path, thread_count, bodies_file = args[1], args[2], tonumber(args[3]), args[4]
    local content_type, authorization = args[5], args[6]
    local headers = {}
    requests_of_share = {}
    if bodies_file then
        headers["Content-Type"] = content_type or "application/x-www-form-urlencoded"
        if authorization and authorization ~= "" then
            headers["Authorization"] = authorization
        end
        local line_number = 0
        for line in io.lines(bodies_file) do
            if line_number % thread_count == id then
                local own_path, body = line:match("^([^\t]*)\t(.*)$")
                if own_path == nil then
                    own_path, body = path, line
                end
                requests_of_share[#requests_of_share + 1] = wrk.format(method, own_path, headers, body)
            end
            line_number = line_number + 1
        end
        plain = nil
    else
        plain = wrk.format(method, path, headers)
    end
    -- wrk 4 calls request() once in thread 0 before the run, only to check that the request
    -- parses, and never sends it: that call gets a harmless GET, so no body is spent on it.
    verified = id ~= 0
    sent = 0
    exhausted = 0
    statuses = {}
end

function delay()
    if plain == nil and sent >= #requests_of_share then
        exhausted = 1
        return 24 * 3600 * 1000 -- this connection sends nothing more during the run
    end
    return 0
end

function request()
    if not verified then
        verified = true
        return wrk.format("GET", "/healthz")
    end
    if plain ~= nil then
        sent = sent + 1
        return plain
    end
    if sent >= #requests_of_share then
        -- Only a connection's first request is not preceded by delay(): a share smaller than the
        -- connections. A GET spends no body; the run is reported as exhausted.
        exhausted = 1
        return wrk.format("GET", "/healthz")
    end
    sent = sent + 1
    return requests_of_share[sent]
end

function response(status, headers, body)
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
    local totals = {}
    local sent_total, exhausted_total = 0, 0
    for _, thread in ipairs(threads) do
        for key, count in pairs(thread:get("statuses")) do
            totals[key] = (totals[key] or 0) + count
        end
        sent_total = sent_total + thread:get("sent")
        exhausted_total = exhausted_total + thread:get("exhausted")
    end
    local parts = {}
    for key, count in pairs(totals) do
        parts[#parts + 1] = string.format('"%s": %d', key, count)
    end
    local errors = summary.errors
    io.write(string.format(
        '{"seconds": %.6f, "requests": %d, "sent": %d, "exhausted": %d, "statuses": {%s}, '
            .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
            .. '"latency_p50_ms": %.3f, "latency_p99_ms": %.3f}\n',
        summary.duration / 1e6, summary.requests, sent_total, exhausted_total, table.concat(parts, ", "),
        errors.connect, errors.read, errors.write, errors.timeout,
        latency:percentile(50) / 1000, latency:percentile(99) / 1000
    ))
end
