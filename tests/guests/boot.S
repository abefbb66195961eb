/*
 * boot.S - multiboot v1 entry shared by the test guests.
 *
 * The loader enters _start in 32-bit protected mode, paging off, with
 * EAX = 0x2BADB002 and EBX = the multiboot information (multiboot v1
 * spec, section 3.2).  Nothing else is assumed: we load our own GDT,
 * build page tables that identity-map 0..4 GiB with 2 MiB pages (P|RW|US,
 * so ring 3 can touch all of RAM), enter long mode and call kmain().
 *
 * GDT: 0x08 kernel code64, 0x10 kernel data, 0x18 user data (DPL3),
 *      0x20 user code64 (DPL3), 0x28 64-bit TSS (filled by rt.c).
 */
#define MB_MAGIC	0x1BADB002
#define MB_FLAGS	0x00000003	/* page-align modules, want mem info */

	.section .multiboot, "a"
	.balign 4
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)

	.section .text.boot, "ax"
	.code32
	.globl _start
_start:
	cli
	cld
	movl %eax, boot_magic
	movl %ebx, boot_info
	movl %cr0, %ecx
	movl %ecx, boot_cr0
	movl $stack0_top, %esp
	pushfl
	popl boot_eflags

	/* Zero .bss (page tables, IDT, TSS, buffers): small, ring 0 is slow. */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl

	/* PML4[0] -> PDPT; PDPT[0..3] -> PD0..3; PD: 2048 x 2 MiB. */
	movl $pdpt, %eax
	orl $0x7, %eax
	movl %eax, pml4
	movl $pd, %eax
	orl $0x7, %eax
	movl $pdpt, %edi
	movl $4, %ecx
1:	movl %eax, (%edi)
	addl $4096, %eax
	addl $8, %edi
	loop 1b
	movl $pd, %edi
	movl $0x87, %eax		/* P | RW | US | PS */
	movl $2048, %ecx
2:	movl %eax, (%edi)
	addl $0x200000, %eax
	addl $8, %edi
	loop 2b

	movl %cr4, %eax
	orl $0x20, %eax			/* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xC0000080, %ecx		/* EFER.LME */
	rdmsr
	orl $0x100, %eax
	wrmsr
	lgdt gdt_ptr32
	movl %cr0, %eax
	orl $0x80000001, %eax		/* PG | PE */
	movl %eax, %cr0
	ljmp $0x08, $long_entry

	.code64
long_entry:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	xorl %eax, %eax
	movw %ax, %fs
	movw %ax, %gs
	movq $stack0_top, %rsp
	xorl %ebp, %ebp
	call kmain
3:	cli
	hlt
	jmp 3b

	.text
/* void rt_enter_ring3(void (*fn)(void), void *stack_top): IOPL=3, IF=0. */
	.globl rt_enter_ring3
rt_enter_ring3:
	xorl %eax, %eax
	movw %ax, %ds
	movw %ax, %es
	pushq $0x1b			/* SS = user data | RPL3 */
	pushq %rsi			/* RSP */
	pushq $0x3002			/* RFLAGS: IOPL=3, IF=0 */
	pushq $0x23			/* CS = user code64 | RPL3 */
	pushq %rdi			/* RIP */
	iretq

/* Exception stubs: vector and error code on the stack, then rt_trap(). */
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
isr\n:
	.if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
	.else
	pushq $0
	.endif
	pushq $\n
	jmp isr_common
	.endr

isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	call rt_trap
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp
	iretq

	.section .rodata
	.balign 8
	.globl rt_isr_table
rt_isr_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad isr\n
	.endr

	.data
	.balign 16
	.globl rt_gdt
rt_gdt:
	.quad 0
	.quad 0x00AF9A000000FFFF	/* 0x08 kernel code64 */
	.quad 0x00CF92000000FFFF	/* 0x10 kernel data */
	.quad 0x00CFF2000000FFFF	/* 0x18 user data, DPL3 */
	.quad 0x00AFFA000000FFFF	/* 0x20 user code64, DPL3 */
	.quad 0, 0			/* 0x28 TSS (rt.c) */
rt_gdt_end:
gdt_ptr32:
	.word rt_gdt_end - rt_gdt - 1
	.long rt_gdt
	.globl boot_magic, boot_info, boot_cr0, boot_eflags
boot_magic:	.long 0
boot_info:	.long 0
boot_cr0:	.long 0
boot_eflags:	.long 0

	.bss
	.balign 4096
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip 4 * 4096

	.section .stack, "aw", @nobits
	.balign 16
	.skip 16384
	.globl stack0_top
stack0_top:

	.section .note.GNU-stack, "", @progbits
