// tlpb_rtl_pcie: the PCIe core as the design sees it, served by the
// tlpbridge RTL adapter (a C library) through one DPI-C call per clock edge.
// Instantiate it next to your design in a simulation top and connect the
// signals one to one (docs/rtl-interface.md describes each; docs/rtl-guide.md
// shows a top). Every output is registered: it changes only after a rising
// edge of clk. Simulation only: it is not part of the design.
module tlpb_rtl_pcie #(
    parameter int DATA_W = 128  // 64, 128, 256 or 512
) (
    input logic clk,

    output logic user_reset,    // synchronous, active high: hold the design in reset
    output logic user_link_up,  // attached to the bridge

    // RX: TLPs for the design (host requests, completions for its reads)
    output logic [DATA_W-1:0]   rx_tdata,
    output logic [DATA_W/8-1:0] rx_tkeep,
    output logic                rx_tlast,
    output logic                rx_tvalid,
    output logic [5:0]          rx_bar_hit,
    input  logic                rx_tready,

    // TX: TLPs from the design (completions, DMA reads and writes)
    input  logic [DATA_W-1:0]   tx_tdata,
    input  logic [DATA_W/8-1:0] tx_tkeep,
    input  logic                tx_tlast,
    input  logic                tx_tvalid,
    output logic                tx_tready,

    // configuration (from config space, which the adapter owns)
    output logic [15:0] cfg_completer_id,
    output logic        cfg_bus_master_enable,
    output logic        cfg_memory_enable,
    output logic [2:0]  cfg_max_payload,       // 128 << code bytes
    output logic [2:0]  cfg_max_read_request,  // 128 << code bytes
    output logic        cfg_msix_enable,
    output logic        cfg_msix_function_mask,
    output logic        cfg_intx_disable,
    output logic        cfg_extended_tag_enable,

    // interrupts
    input  logic        irq_msix_req,     // taken on an edge with irq_msix_ack low
    input  logic [10:0] irq_msix_vector,
    output logic        irq_msix_ack,     // high in the cycle after a taken request
    input  logic        irq_intx,         // INTx level (the adapter applies the command register)

    // simulation control
    input logic design_idle,    // the design waits for input only: the adapter may sleep
    input logic trace_trigger   // rising edge: waveform window trigger
);

  localparam int LANES = DATA_W / 32;

  import "DPI-C" function void tlpb_rtl_dpi_cycle(
    input int lanes,
    input bit rx_tready,
    input bit [511:0] tx_tdata,
    input longint tx_tkeep,
    input bit tx_tlast,
    input bit tx_tvalid,
    input bit irq_msix_req,
    input int irq_msix_vector,
    input bit irq_intx,
    input bit design_idle,
    input bit trace_trigger,
    output bit [511:0] rx_tdata,
    output longint rx_tkeep,
    output bit rx_tlast,
    output bit rx_tvalid,
    output int rx_bar_hit,
    output bit tx_tready,
    output bit irq_msix_ack,
    output bit user_reset,
    output bit user_link_up,
    output int cfg_bits
  );

  // The DPI call has fixed widths (up to 512-bit streams); a narrower
  // instance leaves the upper bits unused.
  /* verilator lint_off UNUSEDSIGNAL */
  bit [511:0] rx_tdata_next;
  longint rx_tkeep_next;
  int rx_bar_hit_next, cfg_bits;
  /* verilator lint_on UNUSEDSIGNAL */
  bit rx_tlast_next, rx_tvalid_next, tx_tready_next, irq_msix_ack_next;
  bit user_reset_next, user_link_up_next;

  initial begin
    user_reset = 1'b1;
    user_link_up = 1'b0;
    rx_tdata = '0;
    rx_tkeep = '0;
    rx_tlast = 1'b0;
    rx_tvalid = 1'b0;
    rx_bar_hit = '0;
    tx_tready = 1'b0;
    irq_msix_ack = 1'b0;
    cfg_bits = 0;
  end

  always @(posedge clk) begin
    tlpb_rtl_dpi_cycle(LANES, rx_tready, 512'(tx_tdata), 64'(tx_tkeep), tx_tlast, tx_tvalid,
                       irq_msix_req, {21'd0, irq_msix_vector}, irq_intx, design_idle,
                       trace_trigger, rx_tdata_next, rx_tkeep_next, rx_tlast_next,
                       rx_tvalid_next, rx_bar_hit_next, tx_tready_next, irq_msix_ack_next,
                       user_reset_next, user_link_up_next, cfg_bits);
    rx_tdata <= rx_tdata_next[DATA_W-1:0];
    rx_tkeep <= rx_tkeep_next[DATA_W/8-1:0];
    rx_tlast <= rx_tlast_next;
    rx_tvalid <= rx_tvalid_next;
    rx_bar_hit <= rx_bar_hit_next[5:0];
    tx_tready <= tx_tready_next;
    irq_msix_ack <= irq_msix_ack_next;
    user_reset <= user_reset_next;
    user_link_up <= user_link_up_next;
  end

  assign cfg_completer_id = cfg_bits[15:0];
  assign cfg_bus_master_enable = cfg_bits[16];
  assign cfg_memory_enable = cfg_bits[17];
  assign cfg_max_payload = cfg_bits[20:18];
  assign cfg_max_read_request = cfg_bits[23:21];
  assign cfg_msix_enable = cfg_bits[24];
  assign cfg_msix_function_mask = cfg_bits[25];
  assign cfg_intx_disable = cfg_bits[26];
  assign cfg_extended_tag_enable = cfg_bits[27];

endmodule
