// dmacopy TX: the TLP emitter. It takes one job at a time (read
// completions first, then the engine's requests) and streams it out:
// header DWs, then the payload (a word, register values, or copy data
// realigned from the staging buffer), LANES DWs per beat. A new job can
// start in the cycle the last beat of the previous one goes out.
module dmacopy_tx
  import dmacopy_pkg::*;
#(
    parameter int LANES = 4,
    parameter int ROWS = 1024
) (
    input logic clk,
    input logic rst,

    output logic [32*LANES-1:0] tx_tdata,
    output logic [4*LANES-1:0]  tx_tkeep,
    output logic                tx_tlast,
    output logic                tx_tvalid,
    input  logic                tx_tready,

    input  logic     cpl_job_valid,
    input  tlp_job_t cpl_job,
    output logic     cpl_job_taken,

    input  logic     eng_job_valid,
    input  tlp_job_t eng_job,
    output logic     eng_job_taken,
    output logic     eng_job_done,

    // copy data going out, for the CRC
    output logic                crc_valid,
    output logic [32*LANES-1:0] crc_data,
    output logic [4*LANES-1:0]  crc_mask,

    output logic [LANES-1:0][9:0]  reg_rd_dw,
    input  logic [LANES-1:0][31:0] reg_rd_data,

    output logic [$clog2(ROWS)-1:0] buf_rd_row,
    input  logic [32*LANES-1:0]     buf_rd_data,
    input  logic [32*LANES-1:0]     buf_rd_data_next,

    output logic busy
);

  localparam int BEAT_BYTES = 4 * LANES;
  localparam int ROW_BITS = $clog2(ROWS);
  localparam int SHIFT_BITS = $clog2(BEAT_BYTES);

  logic busy_q;
  logic from_engine;
  tlp_job_t job;
  logic [10:0] beat;

  wire [11:0] hdr_dws = job.hdr_4dw ? 12'd4 : 12'd3;
  wire [11:0] total_dws = hdr_dws + {1'b0, job.payload_dw};
  wire [15:0] first_pos = {5'd0, beat} * 16'(LANES);  // stream DW of lane 0

  // copy data: stream byte q is buffer byte (q + buf_offset)
  wire [15:0] buf_byte = job.buf_offset + {first_pos[13:0], 2'b00};
  assign buf_rd_row = buf_byte[SHIFT_BITS+ROW_BITS-1:SHIFT_BITS];
  wire unused_buf_byte = ^{buf_byte[15:SHIFT_BITS+ROW_BITS], buf_byte[SHIFT_BITS-1:0]};
  wire [SHIFT_BITS-1:0] buf_shift = job.buf_offset[SHIFT_BITS-1:0];
  wire [64*LANES-1:0] buf_pair = {buf_rd_data_next, buf_rd_data} >> {buf_shift, 3'b000};

  // register reads for the lanes of this beat
  always_comb begin
    for (int j = 0; j < LANES; j++) reg_rd_dw[j] = job.reg_dw + 10'(first_pos + 16'(j) - {4'd0, hdr_dws});
  end

  always_comb begin
    for (int j = 0; j < LANES; j++) begin
      logic [15:0] s;
      logic [15:0] p;
      logic [31:0] header;
      logic [31:0] value;
      logic [3:0] be;
      s = first_pos + 16'(j);
      p = s - {4'd0, hdr_dws};
      case (s[1:0])
        2'd0: header = job.hdr0;
        2'd1: header = job.hdr1;
        2'd2: header = job.hdr2;
        default: header = job.hdr3;
      endcase
      be = (p == 16'd0) ? job.first_be
         : (p == {5'd0, job.payload_dw} - 16'd1) ? job.last_be : 4'hF;
      // register reads: only the enabled bytes, other BARs read zero
      case (job.payload)
        PAY_WORD: value = job.word;
        PAY_REGS: value = job.reg_bar0 ? reg_rd_data[j] & {{8{be[3]}}, {8{be[2]}}, {8{be[1]}}, {8{be[0]}}}
                                       : 32'd0;
        PAY_BUF: value = buf_pair[32*j+:32];
        default: value = 32'd0;
      endcase
      tx_tdata[32*j+:32] = s < {4'd0, hdr_dws} ? header : value;
      tx_tkeep[4*j+:4] = s < {4'd0, total_dws} ? 4'hF : 4'h0;
    end
    for (int b = 0; b < BEAT_BYTES; b++) begin
      logic [15:0] q;
      q = {first_pos[13:0], 2'b00} + 16'(b);
      crc_mask[b] = q >= {3'd0, job.crc_first} && q < {3'd0, job.crc_end};
    end
  end

  assign tx_tvalid = busy_q;
  assign tx_tlast = {4'd0, first_pos} + 20'(LANES) >= {8'd0, total_dws};
  wire fire = busy_q && tx_tready;
  wire free = !busy_q || (fire && tx_tlast);

  assign cpl_job_taken = free && cpl_job_valid;
  assign eng_job_taken = free && !cpl_job_valid && eng_job_valid;
  assign eng_job_done = fire && tx_tlast && from_engine;
  assign crc_valid = fire && from_engine && job.payload == PAY_BUF;
  assign crc_data = tx_tdata;
  assign busy = busy_q;

  always_ff @(posedge clk) begin
    if (rst) begin
      busy_q <= 1'b0;
      from_engine <= 1'b0;
      job <= '0;
      beat <= '0;
    end else begin
      if (fire) beat <= beat + 11'd1;
      if (fire && tx_tlast) busy_q <= 1'b0;
      if (cpl_job_taken || eng_job_taken) begin
        busy_q <= 1'b1;
        from_engine <= eng_job_taken;
        job <= cpl_job_taken ? cpl_job : eng_job;
        beat <= '0;
      end
    end
  end

endmodule
