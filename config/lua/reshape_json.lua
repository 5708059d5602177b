-- SPDX-License-Identifier: Apache-2.0
-- Turns a provider's trade {"type":"trade","sym":"BTC-USD","px":"64000.5",
-- "qty":"0.25","ts":1700000000123} into the shape the dashboards read:
-- {"symbol":"BTC-USD","price":64000.5,"size":0.25,"time_ms":1700000000123,
-- "relay_seq":N}, keyed by its symbol. Other frames pass unchanged.
function on_frame(frame)
  local ok, m = pcall(json.decode, frame.data)
  if not ok or type(m) ~= "table" or m.type ~= "trade" then return frame end
  return json.encode({
    symbol = m.sym,
    price = tonumber(m.px),
    size = tonumber(m.qty),
    time_ms = m.ts,
    relay_seq = frame.seq,
  }), m.sym
end
