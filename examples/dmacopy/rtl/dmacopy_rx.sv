// dmacopy RX: parses the TLPs the PCIe core delivers (header DWs, then
// payload DWs, packed LANES DWs per beat).
//  - memory writes to BAR0 become register writes, one DW per cycle (the
//    stream waits while a beat holds more than one payload DW);
//  - memory reads become a read-completion job for the TLP emitter (reads of
//    more than 32 DW are answered with Unsupported Request);
//  - completions (for the engine's DMA reads) pass to the engine beat by
//    beat at full rate, with the header fields decoded.
module dmacopy_rx
  import dmacopy_pkg::*;
#(
    parameter int LANES = 4
) (
    input logic clk,
    input logic rst,

    input  logic [32*LANES-1:0] rx_tdata,
    input  logic                rx_tvalid,
    input  logic                rx_tlast,
    input  logic [5:0]          rx_bar_hit,
    output logic                rx_tready,

    input logic [15:0] cfg_completer_id,

    // register writes
    output logic        wr_valid,
    output logic [9:0]  wr_dw,
    output logic [31:0] wr_data,
    output logic [3:0]  wr_be,

    // read completions for the emitter
    output logic     cpl_job_valid,
    output tlp_job_t cpl_job,
    input  logic     cpl_job_taken,

    // completions for the engine: one beat per cycle when cpl_valid
    output logic                     cpl_valid,     // a beat of a completion, header known
    output logic                     cpl_last,      // ... its last beat
    output logic [7:0]               cpl_tag,
    output logic [2:0]               cpl_status,
    output logic                     cpl_poisoned,
    output logic [12:0]              cpl_byte_count,  // 1..4096
    output logic [6:0]               cpl_lower_address,
    output logic [10:0]              cpl_length_dw,   // payload DWs (0 for Cpl)
    output logic [LANES-1:0]         cpl_lane_payload,  // which lanes carry payload
    output logic signed [12:0]       cpl_lane0_index,   // payload DW index of lane 0
    output logic [32*LANES-1:0]      cpl_data
);

  // Beat number within the TLP (saturates: only the first two matter for
  // the header, the payload index is counted separately).
  logic [10:0] beat;
  logic [31:0] hdr_q[4];
  logic [LANES-1:0] done_lanes;  // payload lanes of this beat already written
  logic cpl_pending;
  tlp_job_t cpl_job_q;

  function automatic logic [31:0] lane(input int i);
    return rx_tdata[32*i+:32];
  endfunction

  // Header DW i: captured from earlier beats, or in this one.
  function automatic logic [31:0] hdr(input int i);
    int pos0 = int'(beat) * LANES;
    if (i < pos0) return hdr_q[i];
    if (i < pos0 + LANES) return lane(i - pos0);
    return 32'd0;
  endfunction

  wire [31:0] dw0 = hdr(0);
  wire [31:0] dw1 = hdr(1);
  wire [31:0] dw2 = hdr(2);
  wire [31:0] dw3 = hdr(3);
  wire [2:0] fmt = dw0[31:29];
  wire [4:0] ttype = dw0[28:24];
  wire four_dw = fmt[0];
  wire has_data = fmt[1];
  wire [10:0] length_dw = tlp_length(dw0);
  wire is_cpl = ttype == TYPE_CPL;
  wire is_mem = ttype == TYPE_MEM && !fmt[2];
  wire is_mrd = is_mem && !has_data;
  wire is_mwr = is_mem && has_data;
  wire [3:0] hdr_dws = four_dw ? 4'd4 : 4'd3;
  wire hdr_complete = int'(hdr_dws) <= (int'(beat) + 1) * LANES;

  // Payload lanes of this beat.
  logic [LANES-1:0] payload_lanes;
  logic signed [12:0] lane0_index;
  always_comb begin
    lane0_index = 13'(int'(beat) * LANES) - 13'(hdr_dws);
    for (int l = 0; l < LANES; l++) begin
      payload_lanes[l] = has_data && hdr_complete && (lane0_index + 13'(l)) >= 0
                         && (lane0_index + 13'(l)) < $signed({2'b00, length_dw});
    end
  end

  // ---- memory writes: one register per cycle --------------------------------
  wire [11:0] mem_offset = four_dw ? {dw3[11:2], 2'b00} : {dw2[11:2], 2'b00};
  wire [3:0] first_be = dw1[3:0];
  wire [3:0] last_be = dw1[7:4];
  wire write_to_regs = rx_tvalid && is_mwr && rx_bar_hit[0];
  wire [LANES-1:0] write_lanes = payload_lanes & ~done_lanes;
  logic [LANES-1:0] write_onehot;
  int write_lane;
  always_comb begin
    write_lane = 0;
    for (int l = LANES - 1; l >= 0; l--) if (write_lanes[l]) write_lane = l;
    write_onehot = '0;
    write_onehot[write_lane] = write_lanes != '0;
  end
  wire [12:0] write_index = lane0_index + 13'(write_lane);
  assign wr_valid = write_to_regs && write_lanes != '0;
  assign wr_dw = mem_offset[11:2] + write_index[9:0];
  assign wr_data = lane(write_lane);
  assign wr_be = (write_index == 13'd0) ? first_be
               : (write_index == 13'(length_dw) - 13'd1) ? last_be : 4'b1111;
  // the beat is done once at most one payload lane was left to write
  wire write_beat_done = (write_lanes & ~write_onehot) == '0;

  // ---- memory reads: a completion job ---------------------------------------------
  wire read_request = rx_tvalid && is_mrd && hdr_complete;

  // Bytes a read asks for and where its first byte is, as the completion
  // header needs them (byte count, lower address).
  function automatic logic [3:0] lowest_set(input logic [3:0] be);
    for (int i = 0; i < 4; i++) if (be[i]) return 4'(i);
    return 4'd0;
  endfunction
  function automatic logic [3:0] highest_set(input logic [3:0] be);
    for (int i = 3; i >= 0; i--) if (be[i]) return 4'(i);
    return 4'd0;
  endfunction

  tlp_job_t read_job;
  logic read_job_bytes_top;
  always_comb begin
    logic [12:0] bytes;
    logic [1:0] first_byte;
    logic ok;
    first_byte = 2'(lowest_set(first_be));  // 0 for a zero-length read
    if (length_dw == 11'd1)
      bytes = first_be == 4'd0 ? 13'd1 : 13'(highest_set(first_be)) - 13'(lowest_set(first_be)) + 13'd1;
    else
      bytes = 13'(length_dw) * 13'd4 - 13'(lowest_set(first_be)) - (13'd3 - 13'(highest_set(last_be)));
    ok = length_dw <= 11'd32;  // one completion of at most the smallest max payload
    read_job = '0;
    read_job.hdr0 = tlp_dw0(ok ? FMT_3DW_DATA : FMT_3DW, TYPE_CPL, dw0[22:20], dw0[13:12],
                            ok ? length_dw : 11'd0);
    read_job.hdr1 = {cfg_completer_id, ok ? CPL_SC : CPL_UR, 1'b0, bytes[11:0]};
    read_job.hdr2 = {dw1[31:16], dw1[15:8], 1'b0, mem_offset[6:2], first_byte};
    read_job.hdr_4dw = 1'b0;
    read_job.payload_dw = ok ? length_dw : 11'd0;
    read_job.payload = ok ? PAY_REGS : PAY_NONE;
    read_job.reg_dw = mem_offset[11:2];
    read_job.first_be = first_be;
    read_job.last_be = length_dw == 11'd1 ? 4'd0 : last_be;
    read_job.reg_bar0 = rx_bar_hit[0];
    read_job_bytes_top = bytes[12];  // 4096 is encoded as 0
  end

  // ---- ready ------------------------------------------------------------------------------
  always_comb begin
    if (!rx_tvalid) rx_tready = 1'b0;
    else if (write_to_regs) rx_tready = write_beat_done;
    else if (read_request) rx_tready = !cpl_pending;
    else rx_tready = 1'b1;  // completions at full rate; anything else is dropped
  end
  wire fire = rx_tvalid && rx_tready;

  always_ff @(posedge clk) begin
    if (rst) begin
      beat <= '0;
      done_lanes <= '0;
      cpl_pending <= 1'b0;
      cpl_job_q <= '0;
      for (int i = 0; i < 4; i++) hdr_q[i] <= '0;
    end else begin
      if (fire) begin
        for (int i = 0; i < 4; i++) hdr_q[i] <= hdr(i);
        beat <= rx_tlast ? 11'd0 : (beat == 11'h7FF ? beat : beat + 11'd1);
        done_lanes <= '0;
      end else if (wr_valid) begin
        done_lanes <= done_lanes | write_onehot;
      end
      if (cpl_job_taken) cpl_pending <= 1'b0;
      if (read_request && !cpl_pending) begin
        cpl_pending <= 1'b1;
        cpl_job_q <= read_job;
      end
    end
  end

  assign cpl_job_valid = cpl_pending;
  assign cpl_job = cpl_job_q;

  // ---- completions to the engine ---------------------------------------------------------
  assign cpl_valid = rx_tvalid && is_cpl && hdr_complete;  // always ready for these
  assign cpl_last = rx_tlast;
  assign cpl_tag = dw2[15:8];
  assign cpl_status = dw1[15:13];
  assign cpl_poisoned = dw0[14];
  assign cpl_byte_count = dw1[11:0] == 12'd0 ? 13'd4096 : {1'b0, dw1[11:0]};
  assign cpl_lower_address = dw2[6:0];
  assign cpl_length_dw = has_data ? length_dw : 11'd0;
  assign cpl_lane_payload = payload_lanes;
  assign cpl_lane0_index = lane0_index;
  assign cpl_data = rx_tdata;

  // Header bits this device has no use for: the requester ID of its own
  // completions, address bits above its 4 KiB BAR, hits on BARs without
  // registers (they read as zero and ignore writes).
  wire unused_fields = ^{dw2[31:16], dw3[31:12], dw3[1:0], mem_offset[1:0], rx_bar_hit[5:1],
                         read_job_bytes_top};

endmodule
