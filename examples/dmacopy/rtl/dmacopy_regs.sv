// dmacopy register file (BAR0), interrupt causes, MSI-X requests and the
// INTx level. The descriptor engine reports events (a descriptor finished,
// an error) and reads the ring registers; the TLP emitter reads register
// values when it sends a read completion.
module dmacopy_regs
  import dmacopy_pkg::*;
#(
    parameter int LANES = 4
) (
    input logic clk,
    input logic rst,  // power-on, function-level or hot reset

    // one register write per cycle from the RX parser
    input logic       wr_valid,
    input logic [9:0] wr_dw,
    input logic [31:0] wr_data,
    input logic [3:0] wr_be,

    // register reads for read completions, one per lane
    input  logic [LANES-1:0][9:0]  rd_dw,
    output logic [LANES-1:0][31:0] rd_data,

    // to the engine
    output logic        ctrl_enable,
    output logic [63:0] ring_base,
    output logic [31:0] ring_size,
    output logic [31:0] head,
    output logic        ring_valid,
    output logic        descriptors_pending,
    output logic        halted,
    output logic        soft_reset,  // CTRL.RESET written: one-cycle pulse
    input  logic        engine_active,  // a descriptor is in flight

    // events from the engine
    input logic       ev_done,        // the descriptor at HEAD completed
    input logic       ev_done_irq,    // ... and asked for a completion interrupt
    input logic       ev_error,       // halt with this code
    input logic [7:0] ev_error_code,

    // configuration from the PCIe core
    input logic cfg_msix_enable,

    // MSI-X request port of the PCIe core
    output logic        msix_req,
    output logic [10:0] msix_vector,
    input  logic        msix_ack,
    // INTx level (the core gates it with the command register)
    output logic        intx_level
);

  localparam logic [31:0] CTRL_ENABLE = 32'h1;
  localparam logic [31:0] CTRL_RESET = 32'h2;
  localparam logic [31:0] IRQ_COMPLETION = 32'h1;
  localparam logic [31:0] IRQ_ERROR = 32'h2;

  logic [31:0] scratch, ctrl, ring_lo, ring_hi, ring_size_q, head_q, tail;
  logic [31:0] irq_status, irq_mask, completed;
  logic [7:0] err_code;
  logic halted_q;
  // interrupts owed per vector (one MSI-X message each, never merged)
  logic [7:0] msix_owed_completion, msix_owed_error;

  // Ring sanity, as the C model: a power of two 1..4096, base 64-byte aligned.
  wire size_pow2 = ring_size_q != 32'd0 && (ring_size_q & (ring_size_q - 32'd1)) == 32'd0;
  assign ring_valid = size_pow2 && ring_size_q <= MAX_RING_SIZE && ring_lo[5:0] == 6'd0;
  wire [31:0] ring_mask = ring_valid ? ring_size_q - 32'd1 : 32'hFFFF_FFFF;
  assign descriptors_pending = head_q != (tail & ring_mask);

  assign ctrl_enable = ctrl[0];
  assign ring_base = {ring_hi, ring_lo};
  assign ring_size = ring_size_q;
  assign head = head_q;
  assign halted = halted_q;

  wire [31:0] status = {29'd0, halted_q, err_code != ERR_NONE, descriptors_pending || engine_active};

  function automatic logic [31:0] merge(input logic [31:0] old, input logic [31:0] value,
                                        input logic [3:0] be);
    logic [31:0] lanes = {{8{be[3]}}, {8{be[2]}}, {8{be[1]}}, {8{be[0]}}};
    return (old & ~lanes) | (value & lanes);
  endfunction

  wire [31:0] wr_lanes = {{8{wr_be[3]}}, {8{wr_be[2]}}, {8{wr_be[1]}}, {8{wr_be[0]}}};
  wire wr_ctrl = wr_valid && wr_dw == REG_CTRL;
  wire [31:0] ctrl_written = merge(ctrl, wr_data, wr_be);
  assign soft_reset = wr_ctrl && (ctrl_written & CTRL_RESET) != 32'd0;

  // Causes raised this cycle (a masked completion records nothing; an error
  // always sets its bit and signals only when unmasked).
  wire raise_completion = ev_done && ev_done_irq && !irq_mask[0];
  wire raise_error = ev_error;

  // MSI-X messages owed (INTx follows IRQ_STATUS instead)
  wire take_completion = msix_req && msix_ack && msix_vector == MSIX_VECTOR_COMPLETION;
  wire take_error = msix_req && msix_ack && msix_vector == MSIX_VECTOR_ERROR;
  wire owe_completion = cfg_msix_enable && raise_completion;
  wire owe_error = cfg_msix_enable && raise_error && !irq_mask[1];
  wire [31:0] irq_raised = (raise_completion ? IRQ_COMPLETION : 32'd0) | (raise_error ? IRQ_ERROR : 32'd0);
  // A cause raised in the cycle software clears it stays set: software
  // cleared what it had seen.
  wire [31:0] irq_cleared = (wr_valid && wr_dw == REG_IRQ_STATUS) ? wr_data & wr_lanes : 32'd0;

  always_ff @(posedge clk) begin
    if (rst) begin
      scratch <= '0;
      ctrl <= '0;
      ring_lo <= '0;
      ring_hi <= '0;
      ring_size_q <= '0;
      head_q <= '0;
      tail <= '0;
      irq_status <= '0;
      irq_mask <= '0;
      completed <= '0;
      err_code <= ERR_NONE;
      halted_q <= 1'b0;
      msix_owed_completion <= '0;
      msix_owed_error <= '0;
    end else begin
      msix_owed_completion <= msix_owed_completion + {7'd0, owe_completion} - {7'd0, take_completion};
      msix_owed_error <= msix_owed_error + {7'd0, owe_error} - {7'd0, take_error};
      irq_status <= (irq_status & ~irq_cleared) | irq_raised;
      if (ev_done) begin
        head_q <= (head_q + 32'd1) & ring_mask;
        completed <= completed + 32'd1;
      end
      if (ev_error) begin
        err_code <= ev_error_code;
        halted_q <= 1'b1;
      end

      if (wr_valid) begin
        case (wr_dw)
          REG_SCRATCH: scratch <= merge(scratch, wr_data, wr_be);
          REG_CTRL: begin
            // RESET self-clears; ENABLE takes the written value
            ctrl <= ctrl_written & CTRL_ENABLE;
            if (soft_reset) begin
              // engine state, ring registers, counters, IRQ status; SCRATCH
              // and IRQ_MASK stay
              ring_lo <= '0;
              ring_hi <= '0;
              ring_size_q <= '0;
              head_q <= '0;
              tail <= '0;
              completed <= '0;
              err_code <= ERR_NONE;
              halted_q <= 1'b0;
              irq_status <= '0;
            end
          end
          REG_RING_LO: ring_lo <= merge(ring_lo, wr_data, wr_be);
          REG_RING_HI: ring_hi <= merge(ring_hi, wr_data, wr_be);
          REG_RING_SIZE: ring_size_q <= merge(ring_size_q, wr_data, wr_be);
          REG_TAIL: tail <= merge(tail, wr_data, wr_be);
          REG_IRQ_MASK: irq_mask <= merge(irq_mask, wr_data, wr_be);
          default: ;  // IRQ_STATUS above; read-only or unassigned
        endcase
      end
    end
  end

  // Only one vector is requested at a time; completion first.
  assign msix_req = msix_owed_completion != 8'd0 || msix_owed_error != 8'd0;
  assign msix_vector = msix_owed_completion != 8'd0 ? MSIX_VECTOR_COMPLETION : MSIX_VECTOR_ERROR;

  // INTx follows the unmasked causes whenever MSI-X is off.
  assign intx_level = (irq_status & ~irq_mask) != 32'd0 && !cfg_msix_enable;

  function automatic logic [31:0] read_register(input logic [9:0] dw);
    case (dw)
      REG_ID: return DMACOPY_ID;
      REG_SCRATCH: return scratch;
      REG_CTRL: return ctrl;
      REG_STATUS: return status;
      REG_RING_LO: return ring_lo;
      REG_RING_HI: return ring_hi;
      REG_RING_SIZE: return ring_size_q;
      REG_HEAD: return head_q;
      REG_TAIL: return tail;
      REG_IRQ_STATUS: return irq_status;
      REG_IRQ_MASK: return irq_mask;
      REG_COMPLETED: return completed;
      REG_ERR_CODE: return {24'd0, err_code};
      default: return 32'd0;
    endcase
  endfunction

  always_comb begin
    for (int i = 0; i < LANES; i++) rd_data[i] = read_register(rd_dw[i]);
  end

endmodule
