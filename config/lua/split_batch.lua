-- SPDX-License-Identifier: Apache-2.0
-- A provider that sends several updates in one message
-- {"updates":[{"sym":"BTC-USD",...},{"sym":"ETH-USD",...}]} becomes one
-- frame per update, each keyed by its symbol, in the order they came.
function on_frame(frame)
  local ok, m = pcall(json.decode, frame.data)
  if not ok or type(m) ~= "table" or type(m.updates) ~= "table" then return frame end
  local out = {}
  for i, update in ipairs(m.updates) do
    out[i] = {data = json.encode(update), key = update.sym}
  end
  return out
end
