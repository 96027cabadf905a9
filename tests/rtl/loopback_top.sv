// Test design for the RTL adapter: every TLP received on RX goes back out on
// TX unchanged, through a FIFO. rx_tready drops for pseudo-random
// stretches (an LFSR), so the adapter's RX side sees backpressure; the
// adapter is run with --tx-stall-percent for the TX side. design_idle is
// tied low so the simulator never sleeps (the tests count cycles).
module loopback_top #(
    parameter int DATA_W = 128,
    parameter int DEPTH = 64
) (
    input logic clk
);

  logic user_reset, user_link_up;
  logic [DATA_W-1:0] rx_tdata, tx_tdata;
  logic [DATA_W/8-1:0] rx_tkeep, tx_tkeep;
  logic rx_tlast, rx_tvalid, rx_tready, tx_tlast, tx_tvalid, tx_tready;
  logic [5:0] rx_bar_hit;
  logic [15:0] cfg_completer_id;
  logic cfg_bus_master_enable, cfg_memory_enable, cfg_msix_enable, cfg_msix_function_mask;
  logic cfg_intx_disable, cfg_extended_tag_enable, irq_msix_ack;
  logic [2:0] cfg_max_payload, cfg_max_read_request;

  tlpb_rtl_pcie #(.DATA_W(DATA_W)) u_pcie (
      .clk,
      .user_reset, .user_link_up,
      .rx_tdata, .rx_tkeep, .rx_tlast, .rx_tvalid, .rx_bar_hit, .rx_tready,
      .tx_tdata, .tx_tkeep, .tx_tlast, .tx_tvalid, .tx_tready,
      .cfg_completer_id, .cfg_bus_master_enable, .cfg_memory_enable, .cfg_max_payload,
      .cfg_max_read_request, .cfg_msix_enable, .cfg_msix_function_mask, .cfg_intx_disable,
      .cfg_extended_tag_enable,
      .irq_msix_req(1'b0), .irq_msix_vector(11'd0), .irq_msix_ack, .irq_intx(1'b0),
      .design_idle(1'b0), .trace_trigger(1'b0)
  );

  localparam int W = DATA_W + DATA_W / 8 + 1;
  logic [W-1:0] fifo[DEPTH];
  logic [$clog2(DEPTH):0] count;
  logic [$clog2(DEPTH)-1:0] rd, wr;
  logic [15:0] lfsr;

  wire push = rx_tvalid && rx_tready;
  wire pop = tx_tvalid && tx_tready;
  assign rx_tready = count < ($clog2(DEPTH) + 1)'(DEPTH) && lfsr[0];  // ready about half the time
  assign tx_tvalid = count != '0;
  assign {tx_tlast, tx_tkeep, tx_tdata} = fifo[rd];

  always_ff @(posedge clk) begin
    if (user_reset) begin
      count <= '0;
      rd <= '0;
      wr <= '0;
      lfsr <= 16'hACE1;
    end else begin
      lfsr <= {lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5], lfsr[15:1]};
      if (push) begin
        fifo[wr] <= {rx_tlast, rx_tkeep, rx_tdata};
        wr <= wr + 1'b1;
      end
      if (pop) rd <= rd + 1'b1;
      count <= count + {{$clog2(DEPTH) {1'b0}}, push} - {{$clog2(DEPTH) {1'b0}}, pop};
    end
  end

  wire unused = ^{user_link_up, rx_bar_hit, cfg_completer_id, cfg_bus_master_enable,
                  cfg_memory_enable, cfg_msix_enable, cfg_msix_function_mask, cfg_intx_disable,
                  cfg_extended_tag_enable, irq_msix_ack, cfg_max_payload, cfg_max_read_request};

endmodule
