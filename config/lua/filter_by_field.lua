-- SPDX-License-Identifier: Apache-2.0
-- Keeps the trades of the symbols listed below, as they came; drops the
-- rest, and frames that are not JSON. (The filter plugin does this without
-- a script; a script can combine any tests.)
local wanted = {["BTC-USD"] = true, ["ETH-USD"] = true}

function on_frame(frame)
  local ok, message = pcall(json.decode, frame.data)
  if not ok or type(message) ~= "table" then
    relay.count("not_json")
    return nil
  end
  if message.type == "trade" and wanted[message.sym] then
    return frame, message.sym
  end
  return nil
end
