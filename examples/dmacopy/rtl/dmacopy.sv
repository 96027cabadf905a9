// dmacopy, the example device, as synthesizable SystemVerilog. It connects
// to a PCIe core with raw-TLP AXI4-Stream interfaces (the tlpbridge RTL
// adapter's, docs/rtl-interface.md): received TLPs on rx_*, TLPs to send on
// tx_*, configuration on cfg_*, MSI-X requests and the INTx level on irq_*.
// DATA_W is 64 or 128 (the CRC takes up to 16 bytes per beat).
module dmacopy
  import dmacopy_pkg::*;
#(
    parameter int DATA_W = 128,
    parameter int BUF_BYTES = 16384,  // staging buffer
    parameter int READ_TAGS = 16      // DMA reads outstanding
) (
    input logic clk,
    input logic rst,  // synchronous, active high (power-on, FLR, hot reset)

    input  logic [DATA_W-1:0]   rx_tdata,
    input  logic [DATA_W/8-1:0] rx_tkeep,
    input  logic                rx_tlast,
    input  logic                rx_tvalid,
    input  logic [5:0]          rx_bar_hit,
    output logic                rx_tready,

    output logic [DATA_W-1:0]   tx_tdata,
    output logic [DATA_W/8-1:0] tx_tkeep,
    output logic                tx_tlast,
    output logic                tx_tvalid,
    input  logic                tx_tready,

    input logic [15:0] cfg_completer_id,
    input logic        cfg_bus_master_enable,
    input logic [2:0]  cfg_max_payload,
    input logic [2:0]  cfg_max_read_request,
    input logic        cfg_msix_enable,

    output logic        irq_msix_req,
    output logic [10:0] irq_msix_vector,
    input  logic        irq_msix_ack,
    output logic        irq_intx,

    output logic idle,      // nothing to do until a TLP or a configuration change arrives
    output logic error      // STATUS.ERROR (a convenient waveform trigger)
);

  localparam int LANES = DATA_W / 32;
  localparam int ROWS = BUF_BYTES / (4 * LANES);

  // The stream's tkeep is redundant for this design: TLP lengths come from
  // the headers.
  wire unused_tkeep = ^rx_tkeep;

  // RX -> registers, completions, engine
  logic wr_valid;
  logic [9:0] wr_dw;
  logic [31:0] wr_data;
  logic [3:0] wr_be;
  logic cpl_job_valid, cpl_job_taken;
  tlp_job_t cpl_job;
  logic cpl_valid, cpl_last, cpl_poisoned;
  logic [7:0] cpl_tag;
  logic [2:0] cpl_status;
  logic [12:0] cpl_byte_count;
  logic [6:0] cpl_lower_address;
  logic [10:0] cpl_length_dw;
  logic [LANES-1:0] cpl_lane_payload;
  logic signed [12:0] cpl_lane0_index;
  logic [DATA_W-1:0] cpl_data;

  dmacopy_rx #(.LANES(LANES)) u_rx (
      .clk, .rst,
      .rx_tdata, .rx_tvalid, .rx_tlast, .rx_bar_hit, .rx_tready,
      .cfg_completer_id,
      .wr_valid, .wr_dw, .wr_data, .wr_be,
      .cpl_job_valid, .cpl_job, .cpl_job_taken,
      .cpl_valid, .cpl_last, .cpl_tag, .cpl_status, .cpl_poisoned, .cpl_byte_count,
      .cpl_lower_address, .cpl_length_dw, .cpl_lane_payload, .cpl_lane0_index, .cpl_data
  );

  // registers
  logic [LANES-1:0][9:0] reg_rd_dw;
  logic [LANES-1:0][31:0] reg_rd_data;
  logic ctrl_enable, ring_valid, descriptors_pending, halted, soft_reset, engine_active;
  logic [63:0] ring_base;
  logic [31:0] ring_size, head;
  logic ev_done, ev_done_irq, ev_error;
  logic [7:0] ev_error_code;

  dmacopy_regs #(.LANES(LANES)) u_regs (
      .clk, .rst,
      .wr_valid, .wr_dw, .wr_data, .wr_be,
      .rd_dw(reg_rd_dw), .rd_data(reg_rd_data),
      .ctrl_enable, .ring_base, .ring_size, .head, .ring_valid, .descriptors_pending, .halted,
      .soft_reset, .engine_active,
      .ev_done, .ev_done_irq, .ev_error, .ev_error_code,
      .cfg_msix_enable,
      .msix_req(irq_msix_req), .msix_vector(irq_msix_vector), .msix_ack(irq_msix_ack),
      .intx_level(irq_intx)
  );
  wire unused_ring_size = ^ring_size;

  // engine, staging buffer, emitter
  logic eng_job_valid, eng_job_taken, eng_job_done, crc_valid, engine_idle;
  tlp_job_t eng_job;
  logic [DATA_W-1:0] crc_data;
  logic [DATA_W/8-1:0] crc_mask;
  logic [LANES-1:0] buf_wr_enable;
  logic [LANES-1:0][$clog2(ROWS)-1:0] buf_wr_row;
  logic [LANES-1:0][31:0] buf_wr_data;
  logic [$clog2(ROWS)-1:0] buf_rd_row;
  logic [DATA_W-1:0] buf_rd_data, buf_rd_data_next;
  logic tx_busy;

  dmacopy_engine #(.LANES(LANES), .BUF_BYTES(BUF_BYTES), .SLOTS(READ_TAGS)) u_engine (
      .clk, .rst, .soft_reset,
      .ctrl_enable, .ring_base, .head, .ring_valid, .descriptors_pending, .halted,
      .engine_active, .ev_done, .ev_done_irq, .ev_error, .ev_error_code,
      .cfg_bus_master_enable, .cfg_max_payload, .cfg_max_read_request, .cfg_completer_id,
      .cpl_valid, .cpl_last, .cpl_tag, .cpl_status, .cpl_poisoned, .cpl_byte_count,
      .cpl_lower_address, .cpl_length_dw, .cpl_lane_payload, .cpl_lane0_index, .cpl_data,
      .job_valid(eng_job_valid), .job(eng_job), .job_taken(eng_job_taken), .job_done(eng_job_done),
      .crc_valid, .crc_data, .crc_mask,
      .buf_wr_enable, .buf_wr_row, .buf_wr_data,
      .idle(engine_idle)
  );

  dmacopy_buffer #(.LANES(LANES), .ROWS(ROWS)) u_buffer (
      .clk,
      .wr_enable(buf_wr_enable), .wr_row(buf_wr_row), .wr_data(buf_wr_data),
      .rd_row(buf_rd_row), .rd_data(buf_rd_data), .rd_data_next(buf_rd_data_next)
  );

  dmacopy_tx #(.LANES(LANES), .ROWS(ROWS)) u_tx (
      .clk, .rst,
      .tx_tdata, .tx_tkeep, .tx_tlast, .tx_tvalid, .tx_tready,
      .cpl_job_valid, .cpl_job, .cpl_job_taken,
      .eng_job_valid, .eng_job, .eng_job_taken, .eng_job_done,
      .crc_valid, .crc_data, .crc_mask,
      .reg_rd_dw, .reg_rd_data,
      .buf_rd_row, .buf_rd_data, .buf_rd_data_next,
      .busy(tx_busy)
  );

  assign idle = engine_idle && !tx_busy && !cpl_job_valid && !rx_tvalid && !irq_msix_req;
  assign error = halted;

endmodule
