-- Wireshark dissector for tlpbridge traces exported with
-- `tlpbtrace --pcapng OUT TRACE` (link type LINKTYPE_USER0 = 147).
-- The packet format is in docs/protocol.md, "Trace export (pcapng)":
-- a little-endian header of ours, then the TLP as on the PCIe link
-- (3DW/4DW header, DWs big-endian, then payload), an interrupt, or a text.
--
-- Use: wireshark -X lua_script:bridge/wireshark/tlpbridge.lua trace.pcapng
-- or copy this file to ~/.local/lib/wireshark/plugins/.
-- Field names follow the usual PCIe dissector names (fmt, type, tc, attr,
-- rq_id, comp_id, byte_count, lower_addr, ...) under tlpbridge.tlp.*.

local p = Proto("tlpbridge", "tlpbridge trace record")

local directions = {
    [1] = "host->device", [2] = "device->host", [3] = "fallback->host", [4] = "rejected",
    [5] = "violation",
}
local direction_short = { [1] = "h->d", [2] = "d->h", [3] = "fb->h", [4] = "REJ", [5] = "VIOL" }
local record_kinds = { [1] = "TLP", [2] = "interrupt", [3] = "other" }
local irq_kinds = { [1] = "MSI-X", [2] = "MSI", [3] = "INTx assert", [4] = "INTx deassert" }

-- Fmt[2:0] and Type[4:0] of the first header byte, as one value.
local fmttp_names = {
    [0x00] = "MRd", [0x20] = "MRd", [0x40] = "MWr", [0x60] = "MWr",
    [0x04] = "CfgRd0", [0x44] = "CfgWr0", [0x05] = "CfgRd1", [0x45] = "CfgWr1",
    [0x02] = "IORd", [0x42] = "IOWr", [0x0a] = "Cpl", [0x4a] = "CplD",
}
local fmt_names = {
    [0] = "3 DW header, no data", [1] = "4 DW header, no data",
    [2] = "3 DW header, with data", [3] = "4 DW header, with data", [4] = "TLP prefix",
}
local cpl_status = { [0] = "SC", [1] = "UR", [2] = "CRS", [4] = "CA" }

local f = p.fields
f.version   = ProtoField.uint8("tlpbridge.version", "Format version", base.DEC)
f.direction = ProtoField.uint8("tlpbridge.direction", "Direction", base.DEC, directions)
f.kind      = ProtoField.uint8("tlpbridge.kind", "Record kind", base.DEC, record_kinds)
f.device    = ProtoField.string("tlpbridge.device", "Device")
f.backend   = ProtoField.string("tlpbridge.backend", "Backend")
f.reason    = ProtoField.string("tlpbridge.reason", "Reason rejected")
-- A violation record (direction 5): the reason is the checker's formatted
-- violation, which starts with the rule's name (docs/checker.md).
f.rule      = ProtoField.string("tlpbridge.rule", "PCIe checker rule")
f.text      = ProtoField.string("tlpbridge.text", "Message")
f.irq_kind  = ProtoField.uint8("tlpbridge.irq.kind", "Interrupt kind", base.DEC, irq_kinds)
f.irq_vector = ProtoField.uint32("tlpbridge.irq.vector", "Vector", base.DEC)

f.fmttp     = ProtoField.uint8("tlpbridge.tlp.fmttp", "TLP type", base.HEX, fmttp_names)
f.fmt       = ProtoField.uint8("tlpbridge.tlp.fmt", "Fmt", base.DEC, fmt_names, 0xe0)
f.type      = ProtoField.uint8("tlpbridge.tlp.type", "Type", base.HEX, nil, 0x1f)
f.t9        = ProtoField.uint8("tlpbridge.tlp.t9", "T9", base.DEC, nil, 0x80)
f.tc        = ProtoField.uint8("tlpbridge.tlp.tc", "TC", base.DEC, nil, 0x70, "Traffic class")
f.t8        = ProtoField.uint8("tlpbridge.tlp.t8", "T8", base.DEC, nil, 0x08)
f.attr      = ProtoField.uint8("tlpbridge.tlp.attr", "Attr", base.HEX, nil, nil,
                               "Attributes: bit 2 ID-based ordering, 1 relaxed ordering, 0 no snoop")
f.ln        = ProtoField.uint8("tlpbridge.tlp.ln", "LN", base.DEC, nil, 0x02, "Lightweight notification")
f.th        = ProtoField.uint8("tlpbridge.tlp.th", "TH", base.DEC, nil, 0x01, "TLP processing hints")
f.td        = ProtoField.uint8("tlpbridge.tlp.td", "TD", base.DEC, nil, 0x80, "TLP digest")
f.ep        = ProtoField.uint8("tlpbridge.tlp.ep", "EP", base.DEC, nil, 0x40, "Poisoned")
f.at        = ProtoField.uint8("tlpbridge.tlp.at", "AT", base.DEC, nil, 0x0c, "Address type")
f.len_value = ProtoField.uint16("tlpbridge.tlp.len_value", "Length field", base.DEC, nil, 0x03ff)
f.length    = ProtoField.uint16("tlpbridge.tlp.length", "Length (DW)", base.DEC)
f.rq_id     = ProtoField.uint16("tlpbridge.tlp.rq_id", "Requester ID", base.HEX)
f.comp_id   = ProtoField.uint16("tlpbridge.tlp.comp_id", "Completer ID", base.HEX)
f.cfg_id    = ProtoField.uint16("tlpbridge.tlp.cfg_id", "Target ID", base.HEX)
f.bus_no    = ProtoField.uint16("tlpbridge.tlp.bus_no", "Bus number", base.HEX, nil, 0xff00)
f.dev_no    = ProtoField.uint16("tlpbridge.tlp.dev_no", "Device number", base.HEX, nil, 0x00f8)
f.fun_no    = ProtoField.uint16("tlpbridge.tlp.fun_no", "Function number", base.HEX, nil, 0x0007)
f.tag       = ProtoField.uint8("tlpbridge.tlp.tag", "Tag", base.HEX)
f.last_be   = ProtoField.uint8("tlpbridge.tlp.last_be", "Last BE", base.HEX, nil, 0xf0)
f.first_be  = ProtoField.uint8("tlpbridge.tlp.first_be", "First BE", base.HEX, nil, 0x0f)
f.addr      = ProtoField.uint64("tlpbridge.tlp.addr", "Address", base.HEX)
f.ext_reg_no = ProtoField.uint8("tlpbridge.tlp.ext_reg_no", "Extended register number", base.HEX, nil, 0x0f)
f.reg_no    = ProtoField.uint8("tlpbridge.tlp.reg_no", "Register number", base.HEX, nil, 0xfc)
f.cfg_offset = ProtoField.uint16("tlpbridge.tlp.cfg_offset", "Config space offset", base.HEX)
f.status    = ProtoField.uint8("tlpbridge.tlp.status", "Completion status", base.DEC, cpl_status, 0xe0)
f.bcm       = ProtoField.uint8("tlpbridge.tlp.bcm", "BCM", base.DEC, nil, 0x10, "Byte count modified")
f.byte_count = ProtoField.uint16("tlpbridge.tlp.byte_count", "Byte count", base.DEC, nil, nil,
                                 "Remaining bytes including this completion (field 0 = 4096)")
f.lower_addr = ProtoField.uint8("tlpbridge.tlp.lower_addr", "Lower address", base.HEX, nil, 0x7f)
f.payload   = ProtoField.bytes("tlpbridge.tlp.payload", "Payload")

local function bdf(id)
    return string.format("%02x:%02x.%x", bit.rshift(id, 8), bit.band(bit.rshift(id, 3), 0x1f),
                         bit.band(id, 7))
end

local function add_id(tree, field, range)
    local sub = tree:add(field, range)
    sub:append_text(" (" .. bdf(range:uint()) .. ")")
    sub:add(f.bus_no, range)
    sub:add(f.dev_no, range)
    sub:add(f.fun_no, range)
end

-- Returns a one-line summary for the Info column.
local function dissect_tlp(buf, tree)
    if buf:len() < 12 then
        tree:add_expert_info(PI_MALFORMED, PI_ERROR, "TLP shorter than a 3 DW header")
        return "truncated TLP"
    end
    local b0 = buf(0, 1):uint()
    local fmt = bit.rshift(b0, 5)
    local hdr_len = (bit.band(fmt, 1) == 1) and 16 or 12
    local t = tree:add(buf(0, math.min(hdr_len, buf:len())), "PCIe TLP header")
    local name = fmttp_names[b0] or string.format("Fmt/Type 0x%02x", b0)
    local ft = t:add(f.fmttp, buf(0, 1))
    ft:add(f.fmt, buf(0, 1))
    ft:add(f.type, buf(0, 1))
    local b1, b2 = buf(1, 1), buf(2, 1)
    t:add(f.t9, b1)
    t:add(f.tc, b1)
    t:add(f.t8, b1)
    local attr = bit.bor(bit.band(bit.rshift(b1:uint(), 2), 1) * 4, bit.band(bit.rshift(b2:uint(), 4), 3))
    t:add(f.attr, buf(1, 2), attr)
    t:add(f.ln, b1)
    t:add(f.th, b1)
    t:add(f.td, b2)
    t:add(f.ep, b2)
    t:add(f.at, b2)
    t:add(f.len_value, buf(2, 2))
    local has_data = bit.band(fmt, 2) == 2
    local len_field = bit.band(buf(2, 2):uint(), 0x3ff)
    local length = len_field
    if length == 0 and (has_data or bit.band(b0, 0x1f) ~= 0x0a) then
        length = 1024
    end
    t:add(f.length, buf(2, 2), length):set_generated()

    local summary
    local type = bit.band(b0, 0x1f)
    if type == 0x0a or type == 0x0b then
        add_id(t, f.comp_id, buf(4, 2))
        t:add(f.status, buf(6, 1))
        t:add(f.bcm, buf(6, 1))
        local bc = bit.band(buf(6, 2):uint(), 0x0fff)
        if bc == 0 then bc = 4096 end
        t:add(f.byte_count, buf(6, 2), bc)
        add_id(t, f.rq_id, buf(8, 2))
        t:add(f.tag, buf(10, 1))
        t:add(f.lower_addr, buf(11, 1))
        local st = bit.rshift(buf(6, 1):uint(), 5)
        summary = string.format("%s %s -> %s tag 0x%02x %s bc %d", name, bdf(buf(4, 2):uint()),
                                bdf(buf(8, 2):uint()), buf(10, 1):uint(), cpl_status[st] or "?", bc)
    else
        add_id(t, f.rq_id, buf(4, 2))
        t:add(f.tag, buf(6, 1))
        t:add(f.last_be, buf(7, 1))
        t:add(f.first_be, buf(7, 1))
        if type == 0x04 or type == 0x05 then
            add_id(t, f.cfg_id, buf(8, 2))
            t:add(f.ext_reg_no, buf(10, 1))
            t:add(f.reg_no, buf(11, 1))
            local offset = bit.band(buf(10, 2):uint(), 0x0ffc)
            t:add(f.cfg_offset, buf(10, 2), offset):set_generated()
            summary = string.format("%s %s reg 0x%03x", name, bdf(buf(8, 2):uint()), offset)
        elseif hdr_len == 16 then
            if buf:len() < 16 then
                t:add_expert_info(PI_MALFORMED, PI_ERROR, "4 DW header cut short")
                return name .. " (truncated)"
            end
            local a = buf(8, 8):uint64():band(UInt64.new(0xfffffffc, 0xffffffff))
            t:add(f.addr, buf(8, 8), a)
            summary = string.format("%s @ 0x%s len %d", name, a:tohex(), length)
        else
            local a = bit.band(buf(8, 4):uint(), 0xfffffffc)
            if a < 0 then a = a + 4294967296 end
            t:add(f.addr, buf(8, 4), UInt64.new(a))
            summary = string.format("%s @ 0x%08x len %d", name, a, length)
        end
    end
    if has_data then
        local want = length * 4
        local have = buf:len() - hdr_len
        if have < want then
            tree:add_expert_info(PI_MALFORMED, PI_ERROR,
                                 string.format("payload %d bytes, Length says %d", have, want))
            want = math.max(have, 0)
        end
        if want > 0 then
            tree:add(f.payload, buf(hdr_len, want))
        end
    end
    return summary
end

function p.dissector(buf, pinfo, tree)
    pinfo.cols.protocol = "tlpbridge"
    local t = tree:add(p, buf())
    local ok, summary = pcall(function()
        t:add(f.version, buf(0, 1))
        local dir = buf(1, 1):uint()
        t:add(f.direction, buf(1, 1))
        local kind = buf(2, 1):uint()
        t:add(f.kind, buf(2, 1))
        local off = 3
        local dev_len = buf(off, 1):uint()
        local device = dev_len > 0 and buf(off + 1, dev_len):string() or ""
        t:add(f.device, buf(off, 1 + dev_len), device)
        off = off + 1 + dev_len
        local be_len = buf(off, 1):uint()
        t:add(f.backend, buf(off, 1 + be_len), be_len > 0 and buf(off + 1, be_len):string() or "")
        off = off + 1 + be_len
        local reason_len = buf(off, 2):le_uint()
        local reason = reason_len > 0 and buf(off + 2, reason_len):string() or ""
        if reason_len > 0 or dir == 4 then
            t:add(f.reason, buf(off, 2 + reason_len), reason)
        end
        if dir == 5 then
            t:add(f.rule, buf(off, 2 + reason_len), reason:match("^(%S+)") or "")
        end
        off = off + 2 + reason_len
        local body = off < buf:len() and buf(off):tvb() or ByteArray.new():tvb("empty")
        local line
        if kind == 1 then
            line = dissect_tlp(body, t)
        elseif kind == 2 then
            t:add(f.irq_kind, buf(off, 1))
            t:add_le(f.irq_vector, buf(off + 1, 4))
            line = string.format("IRQ %s vector %d", irq_kinds[buf(off, 1):uint()] or "?",
                                 buf(off + 1, 4):le_uint())
        else
            local n = buf(off, 2):le_uint()
            line = n > 0 and buf(off + 2, n):string() or ""
            t:add(f.text, buf(off, 2 + n), line)
        end
        local info = string.format("%s %s %s", device, direction_short[dir] or "?", line)
        if reason_len > 0 then info = info .. " -- reason: " .. reason end
        return info
    end)
    if not ok then
        t:add_expert_info(PI_MALFORMED, PI_ERROR, "record cut short: " .. tostring(summary))
        summary = "malformed tlpbridge record"
    end
    pinfo.cols.info:set(summary)
    return buf:len()
end

DissectorTable.get("wtap_encap"):add(wtap.USER0, p)
